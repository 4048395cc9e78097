#!/usr/bin/env bash
# deploy/systemd/test.sh: check opsbot.service and its ssh.conf drop-in.
#
# 1. systemd-analyze verify prints nothing (an unknown key or a missing
#    binary is only a warning there, so any output fails).
# 2. systemd-analyze security --offline rates the unit 2.0 or better.
# 3. With BOOT=1: the unit runs under a real systemd. debootstrap makes a
#    Debian root (about 45 s, from the Debian mirror), systemd-nspawn boots
#    it (host network), and the unit, the drop-in and the binary from
#    `make dist` start there with a fake Slack token. Then: /readyz answers
#    (the store ok, Slack's auth.test refusing the token), the process has a dynamic UID, no capabilities, no_new_privs and
#    a seccomp filter, the SSH key is a credential, the SQLite file is in
#    /var/lib/private/opsbot, `systemctl stop` ends it cleanly, and a broken
#    policy exits with the line and is retried.
#
# Needs root and systemd-analyze (Debian: systemd); BOOT=1 also debootstrap
# and systemd-nspawn (Debian: debootstrap systemd-container). Without them
# it skips, with CI=true it fails. Prints "systemd: N passed, N failed".
set -euo pipefail

cd "$(dirname "$0")/../.."

missing() {
	if [ "${CI:-}" = true ]; then
		echo "systemd test: $1 is missing (CI=true: failing)" >&2
		exit 1
	fi
	echo "systemd test: skipped: $1 is missing"
	exit 0
}
[ "$(id -u)" -eq 0 ] || missing "root"
command -v systemd-analyze >/dev/null || missing "systemd-analyze (Debian: apt-get install systemd)"

passed=0
failed=0
check() { # check NAME COMMAND...
	local name=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name" >&2
	fi
}

work=$(mktemp -d /tmp/opsbot-systemd-test.XXXXXX)
nspawn_pid=""
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -KILL "$nspawn_pid" 2>/dev/null || true
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
start=$SECONDS

# A root with the unit, the drop-in and a binary where ExecStart expects
# it, and the host's own units (verify follows dependencies).
root=$work/root
install -D -m 0644 deploy/systemd/opsbot.service "$root/etc/systemd/system/opsbot.service"
install -D -m 0644 deploy/systemd/opsbot.service.d/ssh.conf "$root/etc/systemd/system/opsbot.service.d/ssh.conf"
install -D -m 0755 /dev/null "$root/usr/local/bin/opsbot"
install -D -m 0755 /dev/null "$root/bin/kill"
mkdir -p "$root/usr/lib/systemd"
cp -a /lib/systemd/system "$root/usr/lib/systemd/"

out=$(cd / && systemd-analyze --root="$root" verify /etc/systemd/system/opsbot.service 2>&1) && rc=0 || rc=$?
check "systemd-analyze verify: exit 0" test "$rc" -eq 0
check "systemd-analyze verify: no warnings" test -z "$out"
[ -z "$out" ] || echo "$out" >&2

# The drop-in for systemd 247-250 in ssh.conf's place verifies as cleanly.
cp deploy/systemd/opsbot.service.d/ssh-pre251.conf "$root/etc/systemd/system/opsbot.service.d/ssh.conf"
out=$(cd / && systemd-analyze --root="$root" verify /etc/systemd/system/opsbot.service 2>&1) && rc=0 || rc=$?
check "systemd-analyze verify with ssh-pre251.conf: exit 0, no warnings" test "$rc" -eq 0 -a -z "$out"
[ -z "$out" ] || echo "$out" >&2
cp deploy/systemd/opsbot.service.d/ssh.conf "$root/etc/systemd/system/opsbot.service.d/ssh.conf"

score=$(cd / && systemd-analyze --root="$root" security --offline=yes /etc/systemd/system/opsbot.service 2>&1 |
	sed -n 's/.*Overall exposure level for opsbot.service: \([0-9.]*\).*/\1/p')
echo "     systemd-analyze security: ${score:-?} (0 best, 10 worst)"
check "systemd-analyze security: 2.0 or better" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'

if [ "${BOOT:-}" = 1 ]; then
	for tool in debootstrap systemd-nspawn nsenter curl go make; do
		command -v "$tool" >/dev/null || missing "$tool (Debian: apt-get install debootstrap systemd-container curl)"
	done
	make --no-print-directory dist >/dev/null
	ns=$work/ns
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$ns" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
		{ tail "$work/debootstrap.log" >&2; missing "a Debian root from debootstrap"; }
	install -m 0755 "dist/opsbot-linux-$(go env GOARCH)" "$ns/usr/local/bin/opsbot"
	install -m 0644 deploy/systemd/opsbot.service "$ns/etc/systemd/system/"
	install -D -m 0644 deploy/systemd/opsbot.service.d/ssh.conf "$ns/etc/systemd/system/opsbot.service.d/ssh.conf"
	ln -s /etc/systemd/system/opsbot.service "$ns/etc/systemd/system/multi-user.target.wants/opsbot.service"
	install -d -m 0755 "$ns/etc/opsbot"
	install -m 0644 deploy/policy.example.yaml "$ns/etc/opsbot/policy.yaml"
	port=$((20000 + RANDOM % 20000))
	printf "OPSBOT_SLACK_BOT_TOKEN=xoxb-systemd-test\nOPSBOT_SLACK_SIGNING_SECRET='a&b;c\$d'\nOPSBOT_HTTP_ADDR=127.0.0.1:%s\n" "$port" >"$ns/etc/opsbot/env"
	chmod 0600 "$ns/etc/opsbot/env"
	ssh-keygen -q -t ed25519 -N '' -C opsbot-test -f "$ns/etc/opsbot/ssh_key"
	chmod 0600 "$ns/etc/opsbot/ssh_key"
	echo "10.0.0.11 $(cut -d' ' -f1-2 "$ns/etc/opsbot/ssh_key.pub")" >"$ns/etc/opsbot/known_hosts"

	systemd-nspawn -q -D "$ns" --boot --register=no --keep-unit --console=pipe >"$work/boot.log" 2>&1 </dev/null &
	nspawn_pid=$!
	ready=""
	for _ in $(seq 300); do
		ready=$(curl -s "http://127.0.0.1:$port/readyz" || true)
		[ -n "$ready" ] && break
		kill -0 "$nspawn_pid" 2>/dev/null || break
		sleep 0.1
	done
	# The fake bot token fails Slack's auth.test: 503, with the store ok
	# and the cause named.
	check "the unit starts under systemd and /readyz answers with the store ok" grep -q '^store: ok$' <<<"$ready"
	check "/readyz names why Slack is not ready (the fake token)" grep -q '^slack: not ready: slack: auth.test' <<<"$ready"
	init=$(pgrep -P "$nspawn_pid" | head -1)
	inside() { nsenter -t "$init" -a "$@"; }
	pid=$(inside systemctl show -p MainPID --value opsbot)
	status=$(inside cat "/proc/$pid/status")
	check "runs as a dynamic user" bash -c '[[ $(awk "/^Uid:/ {print \$2}" <<<"$1") -ge 61184 ]]' sh "$status"
	check "no capabilities, bounding set empty" grep -q $'^CapBnd:\t0000000000000000' <<<"$status"
	check "no_new_privs and a seccomp filter" bash -c 'grep -q "^NoNewPrivs:.1" <<<"$1" && grep -q "^Seccomp:.2" <<<"$1"' sh "$status"
	check "the SSH key is a credential only the service reads" \
		test "$(inside stat -c '%a %u' /run/credentials/opsbot.service/ssh_key)" = "400 $(awk '/^Uid:/ {print $2}' <<<"$status")"
	check "the SQLite store is in the state directory" inside test -s /var/lib/private/opsbot/opsbot.db
	inside systemctl stop opsbot
	check "systemctl stop ends it cleanly (exit 0)" test "$(inside systemctl show -p ExecMainStatus --value opsbot)" = 0
	echo "bogus_key: 1" >>"$ns/etc/opsbot/policy.yaml"
	inside systemctl start opsbot || true
	sleep 6.5
	check "a broken policy is reported with its line" bash -c 'nsenter -t "$1" -a journalctl -u opsbot --no-pager | grep -q "policy.yaml:[0-9]*:[0-9]*: unknown field \"bogus_key\""' sh "$init"
	check "and retried every 5 s" test "$(inside systemctl show -p NRestarts --value opsbot)" -ge 1
	inside systemctl poweroff || true
	wait "$nspawn_pid" 2>/dev/null || true
	nspawn_pid=""
fi

echo "took $((SECONDS - start)) s"
echo "systemd: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

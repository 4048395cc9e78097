#!/usr/bin/env bash
# deploy/install-paths.sh: walk every install path that can run on this
# machine, as deploy/README.md gives it, and check what the docs say
# happens. `make installtest` runs it.
#
# 1. The binary with a policy (deploy/README.md, "Before any of them"):
#    `make build`; `config check` accepts policy.example.yaml with a
#    throwaway store and refuses a setting serve would refuse; `serve`
#    answers /healthz, /readyz with one line per component and its cause,
#    /metrics with the stamped version; SIGHUP with a broken policy keeps
#    the old one and says so in the log and /readyz; `opsbot backup`
#    copies the store while it runs, and `opsbot audit prune` applies
#    README's audit key beside it; SIGTERM ends it with exit 0 within
#    grace + 15 s.
# 2. systemd: deploy/systemd/test.sh (verify and security; BOOT=1 boots
#    the unit under systemd-nspawn where debootstrap can reach a mirror).
# 3. The container image: deploy/container/test.sh (buildah, root).
# 4. The Helm chart: make chart (render, lint, decode, config check).
#
# Prints "install paths: N passed, N failed"; exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
check() { # check NAME COMMAND...
	local name=$1
	shift
	if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name" >&2; fi
}
work=$(mktemp -d /tmp/opsbot-install-paths.XXXXXX)
pid=""
cleanup() {
	[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "== 1. the binary with a policy"
make --no-print-directory build >/dev/null
bin=$PWD/bin/opsbot
version=$("$bin" version)
out=$(env -u OPSBOT_CONFIG OPSBOT_DATABASE="$work/check.db" "$bin" config check --config deploy/policy.example.yaml 2>&1) && rc=0 || rc=$?
check "config check accepts deploy/policy.example.yaml (exit 0, policy OK)" bash -c '[ "$1" -eq 0 ] && grep -q "^policy OK: deploy/policy.example.yaml" <<<"$2"' sh "$rc" "$out"
out=$(OPSBOT_DATABASE="$work/check.db" OPSBOT_HTTP_ADDR=8080 OPSBOT_SLACK_BOT_TOKEN=xoxb-1 OPSBOT_SLACK_SIGNING_SECRET=s "$bin" config check 2>&1) && rc=0 || rc=$?
check "config check refuses OPSBOT_HTTP_ADDR=8080 as serve would (exit 2)" bash -c '[ "$1" -eq 2 ] && grep -q "give HOST:PORT or :PORT" <<<"$2"' sh "$rc" "$out"

cp deploy/policy.example.yaml "$work/policy.yaml"
port=$((20000 + RANDOM % 10000))
OPSBOT_CONFIG="$work/policy.yaml" OPSBOT_DATABASE="$work/opsbot.db" OPSBOT_HTTP_ADDR="127.0.0.1:$port" \
	OPSBOT_SLACK_BOT_TOKEN=xoxb-install-paths OPSBOT_SLACK_SIGNING_SECRET=install-paths \
	OPSBOT_SLACK_API_URL="http://127.0.0.1:1/api/" "$bin" serve >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
	sleep 0.1
done
check "serve answers /healthz" test "$(curl -s "http://127.0.0.1:$port/healthz")" = ok
ready=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/readyz")
check "/readyz: 503, the store ok, Slack's cause named" bash -c 'grep -q "^store: ok$" <<<"$1" && grep -q "^slack: not ready: slack: auth.test failed" <<<"$1" && grep -q " 503$" <<<"$1"' sh "$ready"
check "the log names the cause once at start" grep -q 'msg="not ready" component=slack' "$work/serve.log"
check "/metrics carries the stamped version" grep -q "opsbot_build_info{version=\"${version#opsbot }\"} 1" <(curl -s "http://127.0.0.1:$port/metrics")
echo "bogus_key: 1" >>"$work/policy.yaml"
kill -HUP "$pid"
sleep 1
check "SIGHUP with a broken policy: logged with its line, the old policy stays" grep -q 'policy reload failed; the previous policy stays in force.*unknown field' "$work/serve.log"
check "/readyz says so" grep -q '^policy: the reload at .* failed' <(curl -s "http://127.0.0.1:$port/readyz")
out=$(OPSBOT_DATABASE="$work/opsbot.db" "$bin" backup "$work/backup.db" 2>&1) && rc=0 || rc=$?
check "opsbot backup copies the store while serve runs" bash -c '[ "$1" -eq 0 ] && [ -s "$2" ]' sh "$rc" "$work/backup.db"
mkdir -m 0700 "$work/archive"
printf 'audit:\n  retain: 400d\n  export: %s\n' "$work/archive" >"$work/retain.yaml"
out=$(OPSBOT_DATABASE="$work/opsbot.db" "$bin" audit prune --config "$work/retain.yaml" 2>&1) && rc=0 || rc=$?
check "opsbot audit prune with README's audit key, beside serve: exit 0, nothing that old" bash -c '[ "$1" -eq 0 ] && grep -q "nothing removed" <<<"$2"' sh "$rc" "$out"
start=$SECONDS
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
check "SIGTERM: exit 0 within grace + 15 s" bash -c '[ "$1" -eq 0 ] && [ "$2" -le 35 ]' sh "$rc" "$((SECONDS - start))"

echo "== 2. systemd"
check "deploy/systemd/test.sh" bash deploy/systemd/test.sh
echo "== 3. the container image"
check "deploy/container/test.sh" bash deploy/container/test.sh
echo "== 4. the Helm chart"
check "make chart" make --no-print-directory chart

echo "install paths: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

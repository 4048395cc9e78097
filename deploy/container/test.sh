#!/usr/bin/env bash
# deploy/container/test.sh: build the container image FROM scratch without a
# Docker engine, and run the binary inside it.
#
# No Docker engine runs on the project's machines and no base image can be
# pulled, so the image is built by buildah (vfs storage, private to this
# run) from deploy/container/Dockerfile.prebuilt: the final stage of
# deploy/container/Dockerfile, fed with the binary `make dist` builds here.
# Then, inside that image:
#   - the file tree is exactly the binary, CA bundle, passwd and group, and
#     /var/lib/opsbot owned by 65532 (no shell, no libc: the binary is static);
#   - the config says USER 65532:65532, EXPOSE 8080, ENTRYPOINT opsbot;
#   - `opsbot version` prints the stamped version (buildah run);
#   - `opsbot config check` accepts deploy/policy.example.yaml and opens the
#     SQLite store under /var/lib/opsbot as user 65532 (buildah run);
#   - `opsbot serve` runs as 65532 on the image's root file system mounted
#     read-only, with a tmpfs on /var/lib/opsbot only, answers GET /healthz
#     with 200, /readyz with 503 naming the cause (the fake Slack token
#     fails auth.test) and the store ok, and exits 0 on SIGTERM.
#
# Needs root, buildah, curl, unshare, chroot. Without one of them it skips;
# with CI=true it fails. Prints "container: N passed, N failed" last.
set -euo pipefail

cd "$(dirname "$0")/../.."

missing() {
	if [ "${CI:-}" = true ]; then
		echo "container test: $1 is missing (CI=true: failing)" >&2
		exit 1
	fi
	echo "container test: skipped: $1 is missing"
	exit 0
}
[ "$(id -u)" -eq 0 ] || missing "root (buildah with vfs storage and unshare -m need it)"
for tool in buildah curl unshare chroot go make; do
	command -v "$tool" >/dev/null || missing "$tool (Debian: apt-get install buildah curl)"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing "/etc/ssl/certs/ca-certificates.crt (Debian: apt-get install ca-certificates)"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }
check() { # check NAME COMMAND...: passes when COMMAND succeeds
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}

work=$(mktemp -d /tmp/opsbot-image-test.XXXXXX)
B=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
ctr=""
serve_pid=""
cleanup() {
	if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
		kill -KILL "$serve_pid" 2>/dev/null || true
	fi
	if [ -n "$ctr" ]; then
		"${B[@]}" umount "$ctr" >/dev/null 2>&1 || true
		"${B[@]}" rm "$ctr" >/dev/null 2>&1 || true
	fi
	"${B[@]}" rmi --all --force >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

start=$SECONDS
arch=$(go env GOARCH)
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
make --no-print-directory dist VERSION="$version" >/dev/null
bin=dist/opsbot-linux-$arch
sh deploy/container/rootfs.sh "$bin" /etc/ssl/certs/ca-certificates.crt dist/image
echo "built $bin ($version) in $((SECONDS - start)) s"

t=$SECONDS
"${B[@]}" bud --quiet --isolation chroot --build-arg VERSION="$version" -f deploy/container/Dockerfile.prebuilt -t localhost/opsbot:test . >/dev/null
echo "built the image in $((SECONDS - t)) s"

# The image's configuration.
cfg() { "${B[@]}" inspect --type image --format "$1" localhost/opsbot:test; }
check "image carries its version as a label" test "$(cfg '{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}')" = "$version"
check "image runs as USER 65532:65532" test "$(cfg '{{.OCIv1.Config.User}}')" = 65532:65532
check "image exposes 8080/tcp" test "$(cfg '{{.OCIv1.Config.ExposedPorts}}')" = 'map[8080/tcp:{}]'
check "image entrypoint is opsbot, command serve" test "$(cfg '{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}')" = '[/usr/local/bin/opsbot] [serve]'
check "image declares the volume /var/lib/opsbot" test "$(cfg '{{.OCIv1.Config.Volumes}}')" = 'map[/var/lib/opsbot:{}]'
check "image keeps the SQLite store in the volume" grep -qx 'OPSBOT_DATABASE=/var/lib/opsbot/opsbot.db' <<<"$(cfg '{{range .OCIv1.Config.Env}}{{println .}}{{end}}')"

# The image's files.
ctr=$("${B[@]}" from --quiet localhost/opsbot:test)
mnt=$("${B[@]}" mount "$ctr")
files=$(cd "$mnt" && find . -mindepth 1 \( -type f -o -type l -o -type d -empty \) -printf '%p %U:%G %m\n' | sort)
want=$(printf '%s\n' \
	'./etc/group 0:0 644' \
	'./etc/passwd 0:0 644' \
	'./etc/ssl/certs/ca-certificates.crt 0:0 644' \
	'./usr/local/bin/opsbot 0:0 755' \
	'./var/lib/opsbot 65532:65532 755')
check "image holds only the binary, CA bundle, passwd, group and /var/lib/opsbot" test "$files" = "$want"
[ "$files" = "$want" ] || diff <(echo "$want") <(echo "$files") >&2 || true
check "/var/lib belongs to root, only /var/lib/opsbot to 65532" test "$(stat -c %u:%g "$mnt/var/lib")" = 0:0
check "image's binary is the one make dist built" cmp -s "$bin" "$mnt/usr/local/bin/opsbot"

# Its binary, run by buildah in the image (chroot isolation: the OCI
# runtime cannot create cgroups on this kind of machine).
run() { "${B[@]}" run --isolation chroot "$@"; }
out=$(run "$ctr" -- /usr/local/bin/opsbot version 2>&1) || true
check "opsbot version in the image prints $version" test "$out" = "opsbot $version"
out=$(run -v "$PWD/deploy/policy.example.yaml:/etc/opsbot/policy.yaml:ro" -e OPSBOT_CONFIG=/etc/opsbot/policy.yaml \
	"$ctr" -- /usr/local/bin/opsbot config check 2>&1) && rc=0 || rc=$?
check "opsbot config check in the image accepts deploy/policy.example.yaml" \
	grep -q '^policy OK: /etc/opsbot/policy.yaml' <<<"$out"
check "config check exits 0" test "$rc" -eq 0
check "the store is SQLite under /var/lib/opsbot, written as the image's USER" grep -q 'store: sqlite /var/lib/opsbot/opsbot.db' <<<"$out"
[ "$rc" -eq 0 ] || echo "$out" >&2

# serve on a read-only root: a new mount namespace binds the image's tree
# read-only, mounts a tmpfs on /var/lib/opsbot (the volume), and chroots
# into it as 65532 with only the image's environment and fake Slack
# credentials.
mapfile -t image_env < <("${B[@]}" inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' localhost/opsbot:test | grep .)
log=$work/serve.log
env -i "${image_env[@]}" OPSBOT_HTTP_ADDR=127.0.0.1:0 \
	OPSBOT_SLACK_BOT_TOKEN=xoxb-image-test OPSBOT_SLACK_SIGNING_SECRET=image-test \
	unshare -m sh -c '
		set -e
		mount --make-rprivate /
		mount --bind "$1" "$1"
		mount -o remount,bind,ro "$1"
		mount -t tmpfs -o mode=0700,uid=65532,gid=65532,size=64m opsbot-state "$1/var/lib/opsbot"
		cd "$1"
		exec chroot --userspec=65532:65532 . /usr/local/bin/opsbot serve
	' sh "$mnt" >"$log" 2>&1 &
serve_pid=$!
addr=""
for _ in $(seq 100); do
	addr=$(grep -o 'msg=serving addr=[^ ]*' "$log" 2>/dev/null | sed 's/.*addr=//') || true
	[ -n "$addr" ] && break
	kill -0 "$serve_pid" 2>/dev/null || break
	sleep 0.1
done
check "opsbot serve starts on the read-only image" test -n "$addr"
if [ -n "$addr" ]; then
	check "GET /healthz answers 200" test "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/healthz")" = 200
	# The fake bot token cannot pass Slack's auth.test (and this machine
	# may not reach Slack): /readyz is 503 and says so, with the store,
	# on the read-only root with its tmpfs volume, ok.
	ready=$(curl -s -w ' %{http_code}' "http://$addr/readyz")
	check "GET /readyz answers 503 naming the cause (the fake Slack token)" grep -q 'slack: not ready: slack: auth.test' <<<"$ready"
	check "GET /readyz: the store in the volume is ok" grep -q '^store: ok$' <<<"$ready"
	check "GET /readyz: status 503" grep -q ' 503$' <<<"$ready"
	check "GET /metrics answers 200 (the chart's ServiceMonitor scrapes it)" test "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/metrics")" = 200
	# env, unshare, sh and chroot each exec the next: $serve_pid is opsbot.
	kill -TERM "$serve_pid" 2>/dev/null || true
fi
rc=0
wait "$serve_pid" || rc=$?
serve_pid=""
check "opsbot serve exits 0 on SIGTERM" test "$rc" -eq 0
check "nothing was written outside /var/lib/opsbot (no read-only errors)" \
	bash -c '! grep -qi "read-only file system" "$1"' sh "$log"
[ "$failed" -eq 0 ] || { echo "--- serve log" >&2; cat "$log" >&2; }

echo "took $((SECONDS - start)) s"
echo "container: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

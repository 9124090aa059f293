# Sourced by the examples' run.sh: what each needs to run an example on this machine,
# without Docker. It sets $launch (a fresh debug build), $scratch (removed at exit) and
# exports the layout variables; start and stop run launch as PID 1 of its own PID
# namespace, as `docker run` and `docker stop` would.
#
#   source "$(dirname "$0")/../lib.sh" nginx:nginx-light curl:curl ...   # command:package

set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=
for need in unshare:util-linux "$@"; do
    command -v "${need%%:*}" >/dev/null || missing="$missing ${need#*:}"
done
if [ -n "$missing" ]; then
    echo "=== installing what this example runs:$missing (apt-get; a minute or so)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
echo "=== building launch (cargo build; the first build takes a few minutes)" >&2
cargo build -q --manifest-path "$here/../../Cargo.toml"
launch=$here/../../target/debug/launch
code=1        # the script's exit code; set to 0 at its end
outer=        # the unshare process of a running launch
scratch=$(mktemp -d)
chmod 755 "$scratch"   # the examples' unprivileged users must reach the volume inside
export LAUNCH_PROJECT=$here/project LAUNCH_DATA=$scratch/volume LAUNCH_CONTROL=$scratch/control.sock
trap '[ -z "$outer" ] || kill $outer 2>/dev/null || true; rm -rf "$scratch"; exit $code' EXIT

# start ARGS...: `launch run ARGS...` as PID 1; returns when `launch health` says yes.
start() {
    echo "=== starting launch as PID 1 of its own PID namespace; waiting until launch health says healthy" >&2
    unshare --pid --fork --mount-proc --kill-child "$launch" run "$@" &
    outer=$!
    until "$launch" health >/dev/null 2>&1; do
        kill -0 "$outer" 2>/dev/null || { outer=; echo "launch ended before it was healthy" >&2; exit 1; }
        sleep 0.1
    done
}

# stop: SIGTERM to launch itself (PID 1 inside), as docker stop; prints its exit code.
stop() {
    kill -TERM "$(ps -o pid= --ppid "$outer" | tr -d ' ')"
    local status=0
    wait "$outer" || status=$?
    outer=
    echo "=== launch exited with $status"
}

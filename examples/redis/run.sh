#!/usr/bin/env bash
# The redis example, run on this machine without Docker: launch is PID 1 of its own
# PID namespace, the volume is a scratch directory (sshd is left off: on a host it
# would manage root's own authorized_keys).
#
#   bash examples/redis/run.sh
#
# First start: the data directory is seeded (GET greeting answers). The operator writes
# a key; launch is stopped (SIGTERM, redis saves) and started again on the same volume:
# the key is still there and the seed is not applied again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
cargo build -q --manifest-path "$here/../../Cargo.toml"
launch=$here/../../target/debug/launch
code=1
scratch=$(mktemp -d)
chmod 755 "$scratch"   # the redis user must reach the volume inside it
export LAUNCH_PROJECT=$here/project LAUNCH_DATA=$scratch/volume LAUNCH_CONTROL=$scratch/control.sock
settings=(--set "paths.etc=$scratch/etc" --set ssh.enabled=false --set redis.port=16380 --set redis.bind=127.0.0.1)
outer=
trap '[ -z "$outer" ] || kill $outer 2>/dev/null || true; rm -rf "$scratch"; exit $code' EXIT

start() {
    unshare --pid --fork --mount-proc --kill-child "$launch" run "${settings[@]}" &
    outer=$!
    until "$launch" health >/dev/null 2>&1; do
        kill -0 "$outer" 2>/dev/null || { outer=; echo "launch ended before it was healthy" >&2; exit 1; }
        sleep 0.1
    done
}
stop() {
    kill -TERM "$(ps -o pid= --ppid "$outer" | tr -d ' ')"
    local status=0
    wait "$outer" || status=$?
    outer=
    echo "=== launch exited with $status"
}

start
echo "=== first start: the seeded dataset"
redis-cli -p 16380 get greeting
redis-cli -p 16380 set visits 41 >/dev/null
redis-cli -p 16380 incr visits
stop
echo "=== second start on the same volume"
start
redis-cli -p 16380 get greeting
redis-cli -p 16380 get visits
stop
code=0

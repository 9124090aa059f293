#!/usr/bin/env bash
# launch in front of one program, as PID 1 of its own PID namespace: what
# `ENTRYPOINT ["launch", "--"]` does in a container, here without Docker.
#
#   bash examples/plain-init/run.sh
#
# It starts worker.sh, shows the process table (no zombies: the orphans were reaped),
# sends HUP (forwarded, the worker reloads) and TERM (forwarded, the worker stops),
# and prints launch's exit code.
set -euo pipefail
cd "$(dirname "$0")"
echo "--- building launch (cargo build; the first build takes a few minutes)" >&2
cargo build -q --manifest-path ../../Cargo.toml
launch=$(cd ../.. && pwd)/target/debug/launch

unshare --pid --fork --mount-proc --kill-child "$launch" --verbose -- sh ./worker.sh &
outer=$!
sleep 1
pid1=$(ps -o pid= --ppid "$outer" | tr -d ' ')
echo "--- the namespace as its processes see it: launch is PID 1, and the worker's"
echo "    orphans have been reaped (no Z in STAT):"
nsenter --target "$pid1" --pid --mount ps -e -o pid,ppid,stat,args
echo "--- docker kill -s HUP:"
kill -HUP "$pid1"
sleep 0.5
echo "--- docker stop:"
kill -TERM "$pid1"
code=0
wait "$outer" || code=$?
echo "--- launch exited with $code"

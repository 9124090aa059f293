#!/usr/bin/env bash
# Measures `launch run` beside supervisord (Debian's package), each as PID 1 of a fresh
# PID namespace, and prints one Markdown table:
#   - shutdown time (SIGTERM until the init has exited) with 1, 10 and 100 processes
#     that stop at once on SIGTERM, median of 5 runs
#   - idle RSS, PSS and voluntary context switches over 5 s with 10 processes
#
#   bash bench/supervise.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v supervisord >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq supervisor >/dev/null
fi
# Debian starts a system supervisord on install; it is not what is measured here.
if command -v service >/dev/null; then service supervisor stop >/dev/null 2>&1 || true; fi
cargo static -q
LAUNCH=$PWD/target/x86_64-unknown-linux-gnu/release/launch
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NS=(unshare --pid --fork --mount-proc --kill-child)

setup() { # $1: number of processes; writes a launch project and a supervisord config
    local n=$1 dir=$work/n$1
    mkdir -p "$dir/project" "$dir/data"
    { echo "processes:"; for i in $(seq "$n"); do echo "  p$i: {command: [sleep, \"1000\"]}"; done; } >"$dir/project/launch.yml"
    {
        printf '[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\npidfile=%s/supervisord.pid\n' "$dir"
        for i in $(seq "$n"); do printf '[program:p%s]\ncommand=sleep 1000\nstartsecs=0\n' "$i"; done
    } >"$dir/supervisord.conf"
}

source "$(dirname "$0")/lib.sh"

count_children() { # children of pid $1
    local parent=$1 n=0 stat line rest
    for stat in /proc/[0-9]*/stat; do
        read -r line <"$stat" 2>/dev/null || continue
        rest=${line##*) }
        set -- $rest
        [ "$2" = "$parent" ] && n=$((n + 1))
    done
    echo $n
}

start_init() { # $1 launch|supervisord, $2 n: starts it, waits for its n children; sets OUTER, INIT
    local dir=$work/n$2
    if [ "$1" = launch ]; then
        LAUNCH_CONTROL=$dir/control.sock "${NS[@]}" "$LAUNCH" run --root "$dir" 2>/dev/null &
    else
        "${NS[@]}" supervisord -c "$dir/supervisord.conf" >/dev/null 2>&1 &
    fi
    OUTER=$!
    PARENT=$OUTER
    INIT=$(child_of)
    while [ "$(count_children "$INIT")" -lt "$2" ]; do sleep 0.02; done
}

declare -A STOP
for n in 1 10 100; do
    setup "$n"
    for init in launch supervisord; do
        times=()
        for _ in 1 2 3 4 5; do
            start_init "$init" "$n"
            t0=$(date +%s%N)
            kill -TERM "$INIT"
            wait "$OUTER" 2>/dev/null || true
            times+=($(( ($(date +%s%N) - t0) / 1000000 )))
        done
        STOP[$init-$n]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
    done
done

declare -A RSS PSS CSW
for init in launch supervisord; do
    start_init "$init" 10
    sleep 1
    read -r RSS[$init] PSS[$init] _ CSW[$init] < <(idle_stats "$INIT")
    kill -TERM "$INIT"
    wait "$OUTER" 2>/dev/null || true
done

echo "| | launch | supervisord |"
echo "|---|---|---|"
for n in 1 10 100; do
    echo "| shutdown, $n processes, median ms of 5 | ${STOP[launch-$n]} | ${STOP[supervisord-$n]} |"
done
echo "| idle RSS with 10 processes, KiB | ${RSS[launch]} | ${RSS[supervisord]} |"
echo "| idle PSS with 10 processes, KiB | ${PSS[launch]} | ${PSS[supervisord]} |"
echo "| voluntary context switches in 5 s idle | ${CSW[launch]} | ${CSW[supervisord]} |"
echo "| supervisord: $(supervisord --version) (Python); launch: static binary | | |"

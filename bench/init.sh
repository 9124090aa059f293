#!/usr/bin/env bash
# Measures launch side by side with tini, dumb-init and catatonit (Debian's packages),
# each as PID 1 of a fresh PID namespace, and prints one Markdown table.
#
#   bash bench/init.sh            # about 8 minutes on 2 cores (2 of them hot-text --check)
#   RUNS=500 bash bench/init.sh   # more start-up samples (ROUNDS=7: latency and reaping)
#   BASELINE=/path/to/an/older/launch bash bench/init.sh   # a column for it too
#
# Never run from the tests: the figures go to docs/performance.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-300}
SIGNALS=${SIGNALS:-2000}
ORPHANS=${ORPHANS:-10000}
ROUNDS=${ROUNDS:-7}

need=()
for pkg in tini:tini-static dumb-init:dumb-init catatonit:catatonit hyperfine:hyperfine gcc:cc; do
    command -v "${pkg#*:}" >/dev/null || need+=("${pkg%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo static -q
LAUNCH=$PWD/target/x86_64-unknown-linux-gnu/release/launch
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -o "$work/helper" bench/helper.c
NS=(unshare --pid --fork --mount-proc --kill-child)

declare -A INIT=(
    [launch]="$LAUNCH --"
    [tini]="$(command -v tini-static) --"
    [dumb-init]="$(command -v dumb-init) --"
    [catatonit]="$(command -v catatonit) --"
)
ORDER=(launch tini dumb-init catatonit)
if [ -n "${BASELINE:-}" ]; then
    INIT[before]="$BASELINE --"
    ORDER=(launch before tini dumb-init catatonit)
fi


source "$(dirname "$0")/lib.sh"

echo "measuring start-up..." >&2
# All the commands in one hyperfine run, so that they share the machine's mood; three
# rounds, and the median of the rounds' medians (a shared 2-core VM drifts a lot).
startup_cmds=("${NS[*]} /bin/true")
for name in "${ORDER[@]}"; do startup_cmds+=("${NS[*]} ${INIT[$name]} /bin/true"); done
for round in 1 2 3; do
    hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$work/start$round.json" "${startup_cmds[@]}" >/dev/null 2>&1
done
read -r bare starts < <(python3 - "$work" "${#startup_cmds[@]}" <<'PY'
import json, statistics, sys
rounds = [json.load(open(f"{sys.argv[1]}/start{r}.json"))["results"] for r in (1, 2, 3)]
med = [statistics.median(r[i]["median"] * 1000 for r in rounds) for i in range(int(sys.argv[2]))]
print(f"{med[0]:.2f}", *(f"{m - med[0]:.2f}" for m in med[1:]))
PY
)
declare -A START
read -r -a start_list <<<"$starts"
for i in "${!ORDER[@]}"; do START[${ORDER[$i]}]=${start_list[$i]}; done

declare -A RSS PSS ANON CSW LAT P99 REAP SIZE
for name in "${ORDER[@]}"; do
    echo "measuring $name idle..." >&2
    # Idle: supervising sleep, after it has settled.
    "${NS[@]}" ${INIT[$name]} sleep 1000 2>/dev/null &
    outer=$!
    PARENT=$outer
    pid=$(child_of)
    sleep 0.5
    read -r RSS[$name] PSS[$name] ANON[$name] CSW[$name] < <(idle_stats "$pid")
    kill -KILL "$pid" 2>/dev/null || true
    wait "$outer" 2>/dev/null || true
    bin=${INIT[$name]% --}
    SIZE[$name]=$(stat -c %s "$bin")
done

# Latency and reaping drift with the machine (reaping is mostly the kernel tearing
# 10,000 processes down on few cores): the inits take turns, ROUNDS rounds, and each
# figure is the median of its rounds.
for round in $(seq "$ROUNDS"); do
    echo "latency and reaping, round $round of $ROUNDS..." >&2
    for name in "${ORDER[@]}"; do
        "$work/helper" latency "$SIGNALS" ${INIT[$name]} 2>/dev/null >>"$work/latency-$name"
        "${NS[@]}" ${INIT[$name]} "$work/helper" orphans "$ORPHANS" 2>/dev/null >>"$work/reap-$name"
    done
done
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for name in "${ORDER[@]}"; do
    LAT[$name]=$(awk '{print $1}' "$work/latency-$name" | median)
    P99[$name]=$(awk '{print $2}' "$work/latency-$name" | median)
    REAP[$name]=$(median <"$work/reap-$name")
done

kib() { python3 -c "print(f'{$1/1024:.0f} KiB' if $1 < 1048576 else f'{$1/1048576:.2f} MiB')"; }
echo
row() { printf '| %s |' "$1"; shift; for v in "$@"; do printf ' %s |' "$v"; done; echo; }
each() { local -n of=$1; for name in "${ORDER[@]}"; do printf '%s\n' "${of[$name]}"; done; }
declare -A KIND=([launch]=static [before]=static [tini]=static [dumb-init]=dynamic [catatonit]=static)
declare -A BIN
for name in "${ORDER[@]}"; do BIN[$name]="$(kib "${SIZE[$name]}") ${KIND[$name]}"; done
row "" "${ORDER[@]}"
echo "|---$(printf '|---%.0s' "${ORDER[@]}")|"
mapfile -t v < <(each START); row "start-up overhead, median ms (bare: $bare ms)" "${v[@]}"
mapfile -t v < <(each RSS); row "idle RSS, KiB" "${v[@]}"
mapfile -t v < <(each PSS); row "idle PSS, KiB" "${v[@]}"
mapfile -t v < <(each ANON); row "idle private memory (Pss_Anon), KiB" "${v[@]}"
mapfile -t v < <(each CSW); row "voluntary context switches in 5 s idle" "${v[@]}"
mapfile -t v < <(each LAT); row "signal forwarding latency, median µs (median of $ROUNDS rounds)" "${v[@]}"
mapfile -t v < <(each P99); row "signal forwarding latency, p99 µs (median of $ROUNDS rounds)" "${v[@]}"
mapfile -t v < <(each REAP); row "reap $ORPHANS orphans, ms (median of $ROUNDS rounds)" "${v[@]}"
mapfile -t v < <(each BIN); row "binary size" "${v[@]}"
echo
# Whether plain init's code still sits in the hot sections (.cargo/hot-text.ld): code
# that strayed outside them shows up here before it shows up as RSS.
python3 scripts/hot-text --check --plain || echo "(regenerate it: python3 scripts/hot-text)"

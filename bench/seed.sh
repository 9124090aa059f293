#!/usr/bin/env bash
# Seeding 100,000 small files (launch reconfigure with one seed entry) against `cp -a`
# of the same tree, on the same filesystem; prints one Markdown table.
# Target: launch at least half as fast as cp -a.
#
#   bash bench/seed.sh
#   BASELINE=/path/to/an/older/launch bash bench/seed.sh   # a row for it too
set -euo pipefail
cd "$(dirname "$0")/.."
cargo static -q
LAUNCH=$PWD/target/x86_64-unknown-linux-gnu/release/launch
FILES=${FILES:-100000}
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/p/project/seed/tree" "$work/p/data"
printf 'seed:\n  - {from: seed/tree, to: tree}\n' >"$work/p/project/launch.yml"
python3 - "$work/p/project/seed/tree" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 1000:03}")
    if i < 1000:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}"), "w") as f:
        f.write(f"small file {i}\n")
PY
sync
ms() { local t0; t0=$(date +%s%N); "$@" >/dev/null 2>&1; echo $(( ($(date +%s%N) - t0) / 1000000 )); }
cp_runs=(); launch_runs=(); base_runs=()
for _ in 1 2 3; do
    rm -rf "$work/cp" "$work/p/data/tree"; sync
    cp_runs+=("$(ms sh -c "cp -a '$work/p/project/seed/tree' '$work/cp' && sync")")
    rm -rf "$work/cp"; sync
    launch_runs+=("$(ms "$LAUNCH" reconfigure --root "$work/p")")
    [ -d "$work/p/data/tree" ] || { echo "launch did not seed" >&2; exit 1; }
    if [ -n "${BASELINE:-}" ]; then
        rm -rf "$work/p/data/tree"; sync
        base_runs+=("$(ms "$BASELINE" reconfigure --root "$work/p")")
    fi
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
cp_ms=$(med "${cp_runs[@]}"); launch_ms=$(med "${launch_runs[@]}")
echo "| seeding $FILES small files, median ms of 3 | time |"
echo "|---|---|"
echo "| cp -a (then sync) | $cp_ms |"
echo "| launch reconfigure (copy, syncfs, rename) | $launch_ms |"
echo "| launch / cp -a | $(python3 -c "print(f'{$launch_ms / $cp_ms:.2f}x')") |"
if [ -n "${BASELINE:-}" ]; then
    base_ms=$(med "${base_runs[@]}")
    echo "| baseline launch reconfigure | $base_ms |"
    echo "| launch / baseline | $(python3 -c "print(f'{$launch_ms / $base_ms:.2f}x')") |"
fi

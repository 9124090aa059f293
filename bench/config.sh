#!/usr/bin/env bash
# Measures the configuration pipeline and prints one Markdown table:
#   - render 1,000 templates from a pillar of 10,000 keys, end to end (`launch
#     reconfigure`: load, merge, render the spec, render, compare, write); target < 1 s
#   - the same again when nothing changed (render and compare, no writes)
#   - `launch check` with a 10 MB operator pillar: time and peak memory
#
#   bash bench/config.sh
#   BASELINE=/path/to/an/older/launch bash bench/config.sh   # the same rows for both
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
cargo static -q
LAUNCH=$PWD/target/x86_64-unknown-linux-gnu/release/launch
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A project of 1,000 templates, each using ten of the pillar's 10,000 keys.
many=$work/many
mkdir -p "$many/project/templates" "$many/data" "$many/out"
python3 - "$many" <<'PY'
import sys, os
root = sys.argv[1]
with open(f"{root}/project/pillar.yml", "w") as f:
    for g in range(100):
        f.write(f"group{g}:\n")
        for k in range(100):
            f.write(f"  key{k}: value-{g}-{k}\n")
with open(f"{root}/project/launch.yml", "w") as f:
    f.write("templates:\n")
    for t in range(1000):
        f.write(f"  - {{src: templates/t{t}.conf, dest: {root}/out/t{t}.conf}}\n")
for t in range(1000):
    g = t % 100
    with open(f"{root}/project/templates/t{t}.conf", "w") as f:
        f.write(f"# template {t}\n")
        for k in range(10):
            f.write(f"key{k} = {{{{ pillar.group{g}.key{k} }}}}\n")
        f.write("{% for k, v in pillar.group" + str(g) + " %}{{ k }}={{ v | shell_quote }}\n{% endfor %}")
PY

# A 10 MB operator pillar over a small project.
big=$work/big
mkdir -p "$big/project" "$big/data/configuration"
printf 'processes: {}\n' >"$big/project/launch.yml"
printf 'bulk: {}   # free-form: an empty mapping as the default\n' >"$big/project/pillar.yml"
python3 - "$big/data/configuration/pillar.yml" <<'PY'
import sys
size, i = 0, 0
with open(sys.argv[1], "w") as f:
    f.write("bulk:\n")
    while size < 10 * 1024 * 1024:
        line = f'  key{i}: {{value: "some text for entry {i}", n: {i}, list: [1, 2, 3]}}\n'
        f.write(line); size += len(line); i += 1
PY

peak() { /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1; }
# One binary's three figures: first reconfigure (s, KiB), again (ms), big check (s, KiB).
measure() {
    local bin=$1 first_s first_kb again big_s big_kb
    rm -rf "$many/out" "$many/data"; mkdir -p "$many/out" "$many/data"
    read -r first_s first_kb < <(peak "$bin" reconfigure --root "$many")
    hyperfine -N --warmup 2 --runs 10 --export-json "$work/again.json" "$bin reconfigure --root $many" >/dev/null 2>&1
    again=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$work/again.json")
    read -r big_s big_kb < <(peak "$bin" check --root "$big")
    echo "$(python3 -c "print(round($first_s*1000))") $((first_kb / 1024)) $again $(python3 -c "print(round($big_s*1000))") $((big_kb / 1024))"
}
read -r a1 a2 a3 a4 a5 < <(measure "$LAUNCH")
if [ -n "${BASELINE:-}" ]; then
    read -r b1 b2 b3 b4 b5 < <(measure "$BASELINE")
    echo "| | time | peak RSS | baseline time | baseline peak RSS |"
    echo "|---|---|---|---|---|"
    echo "| reconfigure: 1,000 templates, 10,000-key pillar, all written | $a1 ms | $a2 MiB | $b1 ms | $b2 MiB |"
    echo "| reconfigure again, nothing changed (median of 10) | $a3 ms | | $b3 ms | |"
    echo "| check with a 10 MB operator pillar (load + merge + render) | $a4 ms | $a5 MiB | $b4 ms | $b5 MiB |"
else
    echo "| | time | peak RSS |"
    echo "|---|---|---|"
    echo "| reconfigure: 1,000 templates, 10,000-key pillar, all written | $a1 ms | $a2 MiB |"
    echo "| reconfigure again, nothing changed (median of 10) | $a3 ms | |"
    echo "| check with a 10 MB operator pillar (load + merge + render) | $a4 ms | $a5 MiB |"
fi

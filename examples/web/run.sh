#!/usr/bin/env bash
# The web example's configuration, rendered on this machine without Docker: the
# project is this directory's project/, the "volume" and the /etc it renders into are
# scratch directories.
#
#   bash examples/web/run.sh
#
# It shows `launch check` (valid, a diff of what would be written), `launch
# reconfigure` (writes, atomically), an operator edit and the check that shows it, and
# a mistake being refused with its file:line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cargo build -q --manifest-path "$here/../../Cargo.toml"
launch=$here/../../target/debug/launch
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export LAUNCH_PROJECT=$here/project LAUNCH_DATA=$scratch/volume
etc=(--set "paths.etc=$scratch/etc")

echo "=== launch check (first start: nothing rendered yet)"
"$launch" check "${etc[@]}"
echo
echo "=== launch reconfigure"
"$launch" reconfigure "${etc[@]}"
echo
echo "=== the operator sets the app's port in the volume's configuration/pillar.yml"
printf 'app:\n  port: 9090\n' >> "$LAUNCH_DATA/configuration/pillar.yml"
"$launch" check "${etc[@]}"
"$launch" reconfigure "${etc[@]}"
echo
echo "=== and then makes a mistake (a tab); launch refuses it and writes nothing"
printf 'nginx:\n\tport: 81\n' >> "$LAUNCH_DATA/configuration/pillar.yml"
"$launch" reconfigure "${etc[@]}" || echo "(exit code $?)"

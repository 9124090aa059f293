#!/usr/bin/env bash
# The web example, run on this machine without Docker: launch is PID 1 of its own PID
# namespace, the project is this directory's project/, the volume and the files it
# renders are in a scratch directory.
#
#   bash examples/web/run.sh
#
# It starts nginx in front of the app, fetches the page, then plays the operator: a
# `launch check` of an edit to the volume's configuration/pillar.yml, `launch reload`
# (what `docker kill -s HUP` does), the new page, a broken edit refused with its line,
# and `launch status`; then SIGTERM, and the exit code.
source "$(dirname "$0")/../lib.sh" nginx:nginx-light busybox:busybox-static curl:curl
mkdir -p "$scratch/run"
paths=(--set "paths.etc=$scratch/etc" --set "paths.www=$scratch/www" --set "paths.run=$scratch/run"
       --set nginx.port=8088 --set app.port=8089)
start "${paths[@]}"

echo "=== launch is up; the page through nginx:"
curl -sS http://127.0.0.1:8088/
echo
echo "=== the operator changes the greeting in the volume's configuration/pillar.yml"
printf 'greeting: Edited by the operator\n' >> "$LAUNCH_DATA/configuration/pillar.yml"
"$launch" check "${paths[@]}"
"$launch" reload
sleep 0.5
curl -sS http://127.0.0.1:8088/
echo
echo "=== and then makes a mistake (a tab); launch refuses it and keeps running as it was"
printf 'nginx:\n\tport: 81\n' >> "$LAUNCH_DATA/configuration/pillar.yml"
"$launch" reload || echo "(launch reload: exit code $?)"
"$launch" status
echo
echo "=== docker stop would send SIGTERM now"
stop
code=0

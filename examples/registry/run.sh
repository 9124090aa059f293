#!/usr/bin/env bash
# The registry example, run on this machine without Docker: launch is PID 1 of its own
# PID namespace, the volume and the secrets are scratch directories.
#
#   bash examples/registry/run.sh
#
# First start: a CA and a server certificate are generated into the volume; nginx
# serves the registry over TLS with the users of the secret. curl, trusting that CA,
# is refused without a password and answered with one; a restart keeps the same CA.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for need in nginx:nginx-light docker-registry:docker-registry openssl:openssl curl:curl; do
    command -v "${need%%:*}" >/dev/null || missing="${missing:-} ${need#*:}"
done
if [ -n "${missing:-}" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
cargo build -q --manifest-path "$here/../../Cargo.toml"
launch=$here/../../target/debug/launch
code=1
scratch=$(mktemp -d)
chmod 755 "$scratch"
mkdir -p "$scratch/run" "$scratch/secrets"
printf 'admin:%s\n' "$(openssl passwd -6 s3cret)" > "$scratch/secrets/registry_htpasswd"
export LAUNCH_PROJECT=$here/project LAUNCH_DATA=$scratch/volume LAUNCH_CONTROL=$scratch/control.sock
export LAUNCH_SECRETS_DIR=$scratch/secrets
settings=(--set "paths.etc=$scratch/etc" --set "paths.run=$scratch/run" --set port=15443
          --set registry.user=nobody --set registry.group=nogroup)
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
tls=(--cacert "$LAUNCH_DATA/data/tls/ca.crt")

start
echo "=== without a password:"
curl -sS "${tls[@]}" -o /dev/null -w '%{http_code}\n' https://localhost:15443/v2/
echo "=== as admin:"
curl -sS "${tls[@]}" -u admin:s3cret -w ' %{http_code}\n' https://localhost:15443/v2/_catalog
fingerprint=$(openssl x509 -in "$LAUNCH_DATA/data/tls/ca.crt" -noout -fingerprint -sha256)
stop
echo "=== second start on the same volume: the same CA"
start
[ "$(openssl x509 -in "$LAUNCH_DATA/data/tls/ca.crt" -noout -fingerprint -sha256)" = "$fingerprint" ] && echo "$fingerprint"
curl -sS "${tls[@]}" -u admin:s3cret -w ' %{http_code}\n' https://localhost:15443/v2/_catalog
stop
code=0

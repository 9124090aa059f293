#!/usr/bin/env bash
# The registry example, run on this machine without Docker: launch is PID 1 of its own
# PID namespace, the volume and the secrets are scratch directories.
#
#   bash examples/registry/run.sh
#
# First start: a CA and a server certificate are generated into the volume; nginx
# serves the registry over TLS with the users of the secret. curl, trusting that CA,
# is refused without a password and answered with one; a restart keeps the same CA.
source "$(dirname "$0")/../lib.sh" nginx:nginx-light docker-registry:docker-registry openssl:openssl curl:curl
mkdir -p "$scratch/run" "$scratch/secrets"
printf 'admin:%s\n' "$(openssl passwd -6 s3cret)" > "$scratch/secrets/registry_htpasswd"
export LAUNCH_SECRETS_DIR=$scratch/secrets
settings=(--set "paths.etc=$scratch/etc" --set "paths.run=$scratch/run" --set port=15443
          --set registry.user=nobody --set registry.group=nogroup)
tls=(--cacert "$LAUNCH_DATA/data/tls/ca.crt")

start "${settings[@]}"
echo "=== without a password:"
curl -sS "${tls[@]}" -o /dev/null -w '%{http_code}\n' https://localhost:15443/v2/
echo "=== as admin:"
curl -sS "${tls[@]}" -u admin:s3cret -w ' %{http_code}\n' https://localhost:15443/v2/_catalog
fingerprint=$(openssl x509 -in "$LAUNCH_DATA/data/tls/ca.crt" -noout -fingerprint -sha256)
stop
echo "=== second start on the same volume: the same CA"
start "${settings[@]}"
[ "$(openssl x509 -in "$LAUNCH_DATA/data/tls/ca.crt" -noout -fingerprint -sha256)" = "$fingerprint" ] && echo "$fingerprint"
curl -sS "${tls[@]}" -u admin:s3cret -w ' %{http_code}\n' https://localhost:15443/v2/_catalog
stop
code=0

#!/usr/bin/env bash
# Builds the registry example's image: bash examples/registry/image.sh [IMAGE]
# then, with the users in a secret (docker-compose.yml does this in a swarm):
#   printf 'admin:%s\n' "$(openssl passwd -6 secret)" > htpasswd
#   docker run -d -p 5443:443 -v registry-data:/srv/projects/registry/data \
#       -v "$PWD/htpasswd:/run/secrets/registry_htpasswd:ro" launch-examples/registry
exec "$(dirname "$0")/../../scripts/example-image" registry "${1:-launch-examples/registry}" \
    /usr/bin/docker-registry /usr/sbin/nginx /usr/share/nginx /usr/bin/openssl

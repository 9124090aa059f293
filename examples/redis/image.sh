#!/usr/bin/env bash
# Builds the redis example's image: bash examples/redis/image.sh [IMAGE]
# then: docker run -d -p 6379:6379 -p 2222:22 -v redis-data:/srv/projects/redis/data launch-examples/redis
exec "$(dirname "$0")/../../scripts/example-image" redis "${1:-launch-examples/redis}" \
    /usr/bin/redis-server /usr/bin/redis-cli /usr/sbin/sshd

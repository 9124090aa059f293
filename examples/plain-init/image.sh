#!/usr/bin/env bash
# Builds the plain-init example's image: bash examples/plain-init/image.sh [IMAGE]
# then: docker run -d --name worker launch-examples/plain-init; docker kill -s HUP worker; docker stop worker
exec "$(dirname "$0")/../../scripts/example-image" plain-init "${1:-launch-examples/plain-init}"

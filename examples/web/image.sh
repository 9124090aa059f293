#!/usr/bin/env bash
# Builds the web example's image: bash examples/web/image.sh [IMAGE]
# then: docker run -d -p 8080:80 -v web-data:/srv/projects/web/data launch-examples/web
exec "$(dirname "$0")/../../scripts/example-image" web "${1:-launch-examples/web}" \
    /usr/sbin/nginx /usr/share/nginx

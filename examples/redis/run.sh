#!/usr/bin/env bash
# The redis example, run on this machine without Docker: launch is PID 1 of its own
# PID namespace, the volume is a scratch directory (sshd is left off: on a host it
# would manage root's own authorized_keys).
#
#   bash examples/redis/run.sh
#
# First start: the data directory is seeded (GET greeting answers). The operator writes
# a key; launch is stopped (SIGTERM, redis saves) and started again on the same volume:
# the key is still there and the seed is not applied again.
source "$(dirname "$0")/../lib.sh" redis-server:redis-server
settings=(--set "paths.etc=$scratch/etc" --set ssh.enabled=false --set redis.port=16380 --set redis.bind=127.0.0.1)

start "${settings[@]}"
echo "=== first start: the seeded dataset"
redis-cli -p 16380 get greeting
redis-cli -p 16380 set visits 41 >/dev/null
redis-cli -p 16380 incr visits
stop
echo "=== second start on the same volume"
start "${settings[@]}"
redis-cli -p 16380 get greeting
redis-cli -p 16380 get visits
stop
code=0

#!/bin/sh
# A typical badly-behaved container workload: it leaves orphans behind (a background
# job whose parent exits), reloads on HUP and stops on TERM.
echo "worker: pid $$, starting"
for i in 1 2 3; do
    # A subshell that starts a job and exits at once: the job becomes an orphan that
    # only PID 1 can reap.
    (sleep 0.$i &)
done
trap 'echo "worker: got HUP, reloading"' HUP
trap 'echo "worker: got TERM, stopping cleanly"; exit 0' TERM
while :; do
    sleep 1 &
    wait $!
done

#!/usr/bin/env bash
# Measures `launch run` side by side with supervisord, circus, s6 and Horust, each as
# PID 1 of a fresh PID namespace, and prints one Markdown table (how each figure is
# measured: bench/supervise.py):
#   - start-up to all running, and shutdown (SIGTERM until the init has exited), with
#     1, 10 and 100 processes that each write a byte to a FIFO, then sleep
#   - idle RSS, PSS and wake-ups per second of all the supervisor's processes, with 10
#   - reload of an unchanged configuration, with 10
#   - RSS after relaying 1 GiB of logs from one process to a reader
#
#   bash bench/supervise.sh                      # about 25 minutes on 2 cores
#   ROUNDS=3 LOG_ROUNDS=1 LOG_BYTES=$((256<<20)) bash bench/supervise.sh   # quicker
#   TOOLS="launch s6" FIGURES="startstop idle" bash bench/supervise.sh     # a subset
#   LAUNCH=/path/to/another/launch bash bench/supervise.sh                  # that binary
#   BASELINE=/path/to/an/older/launch bash bench/supervise.sh               # a column for it too
#
# The peers it installs when missing: supervisor, s6 and execline (Debian's packages),
# circus (PyPI, into a virtualenv at $CIRCUS_VENV, default ~/.local/circus), Horust
# (`cargo install --locked horust`, into ~/.cargo/bin: a few minutes of compiling).
# Never run from the tests: the figures go to docs/performance.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in supervisor:supervisord s6:s6-svscan execline:execlineb gcc:cc; do
    command -v "${pkg#*:}" >/dev/null || need+=("${pkg%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts a system supervisord on install; it is not what is measured here.
if command -v service >/dev/null; then service supervisor stop >/dev/null 2>&1 || true; fi

CIRCUS_VENV=${CIRCUS_VENV:-$HOME/.local/circus}
if [ ! -x "$CIRCUS_VENV/bin/circusd" ]; then
    echo "installing circus into $CIRCUS_VENV..." >&2
    python3 -m venv "$CIRCUS_VENV"
    "$CIRCUS_VENV/bin/pip" install -q circus
fi

HORUST=${HORUST:-$(command -v horust || echo "$HOME/.cargo/bin/horust")}
if [ ! -x "$HORUST" ]; then
    echo "installing Horust into ~/.cargo/bin (cargo install --locked horust)..." >&2
    # Outside the repository and its target directory: a peer, not a dependency.
    (cd / && cargo install --locked -q horust)
    HORUST=$HOME/.cargo/bin/horust
fi

if [ -z "${LAUNCH:-}" ]; then
    cargo static -q
    LAUNCH=$PWD/target/x86_64-unknown-linux-gnu/release/launch
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -o "$work/helper" bench/helper.c

echo "supervisord $(supervisord --version), circus $("$CIRCUS_VENV/bin/circusd" --version)," \
    "s6 $(dpkg-query -W -f '${Version}' s6), Horust $(cargo install --list --root "$(dirname "$(dirname "$HORUST")")" 2>/dev/null | awk '/^horust /{print $2}' | tr -d 'v:')," \
    "launch $(stat -c %s "$LAUNCH") bytes${BASELINE:+, before $(stat -c %s "$BASELINE") bytes}" >&2
LAUNCH=$LAUNCH HELPER=$work/helper HORUST=$HORUST \
    CIRCUSD=$CIRCUS_VENV/bin/circusd CIRCUSCTL=$CIRCUS_VENV/bin/circusctl \
    python3 bench/supervise.py

# Shared by the bench scripts (sourced, not run).

# The first child of the pid in $PARENT, waiting up to 10 s for it to appear.
child_of() {
    local stat line rest
    for _ in $(seq 2000); do
        for stat in /proc/[0-9]*/stat; do
            # A process may end between the glob and the read: skip it quietly.
            { read -r line <"$stat"; } 2>/dev/null || continue
            rest=${line##*) }
            set -- $rest
            [ "$2" = "$PARENT" ] && { echo "${stat//[^0-9]/}"; return; }
        done
        sleep 0.005
    done
}

# Idle cost of pid $1: prints "RSS_KiB PSS_KiB PSS_ANON_KiB VOLUNTARY_SWITCHES_IN_5S".
idle_stats() {
    local pid=$1 rollup=/proc/$1/smaps_rollup c0 c1
    c0=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$pid/status")
    sleep 5
    c1=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$pid/status")
    echo "$(awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Pss_Anon:/ {a=$2} END {print r, p, a}' "$rollup") $((c1 - c0))"
}

# Shared by the bench scripts (sourced, not run).

# The first child of the pid in $PARENT, waiting up to 10 s for it to appear.
child_of() {
    local stat line rest
    for _ in $(seq 2000); do
        for stat in /proc/[0-9]*/stat; do
            read -r line <"$stat" 2>/dev/null || continue
            rest=${line##*) }
            set -- $rest
            [ "$2" = "$PARENT" ] && { echo "${stat//[^0-9]/}"; return; }
        done
        sleep 0.005
    done
}

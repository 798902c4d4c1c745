#!/usr/bin/env bash
# fuzz.sh SECONDS NAME...: run each libFuzzer target build/fuzz/NAME for SECONDS of
# wall time, one after the other, then print one summary line per target; exits 1
# if any target found a crash (or failed to run), naming the reproducer.
# Used by `make fuzz` and `make fuzz-smoke` (see "Fuzzing" in docs/architecture.md).
#
# Per target: seeds from fuzz/corpus/NAME (read only), new inputs kept in
# build/corpus/NAME (so the next run starts where this one stopped), extra
# libFuzzer flags from fuzz/NAME.options if there is one, the log in
# build/fuzz/NAME.log and reproducers in build/fuzz/crashes/NAME/.
# CPU seconds come from /usr/bin/time: on a shared machine a target may get
# less CPU than wall time, and a campaign is sized in CPU time.
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS NAME..." >&2
    exit 2
fi
secs=$1
shift
cpu_goal=${FUZZ_CPU_SECONDS:-}
case $cpu_goal in
    '' | *[!0-9]*) cpu_goal= ;;
esac
case $secs in
    '' | *[!0-9]*) echo "$0: SECONDS must be a whole number, not '$secs'" >&2; exit 2 ;;
esac

summary=()
failed=()
for n in "$@"; do
    bin=build/fuzz/$n
    if [ ! -x "$bin" ]; then
        echo "$0: no fuzz target $bin (make builds it)" >&2
        exit 2
    fi
    log=build/fuzz/$n.log
    crashes=build/fuzz/crashes/$n/
    mkdir -p "build/corpus/$n" "$crashes"
    opts=()
    if [ -f "fuzz/$n.options" ]; then
        # One or more flags per line; '#' starts a comment.
        read -r -a opts <<< "$(sed 's/#.*//' "fuzz/$n.options" | tr '\n' ' ')"
    fi
    echo "fuzz: $n for $secs s${cpu_goal:+ runs until $cpu_goal CPU-s}${opts[*]:+ (${opts[*]})}, log $log"
    : > "$log"
    wall=0 cpu=0 execs=0 rc=0
    # One run of $secs wall seconds; with FUZZ_CPU_SECONDS, more runs from the corpus the
    # last one left until the target had that much CPU time (a shared machine gives less
    # CPU than wall time). Every run's log is appended.
    while :; do
        /usr/bin/time -f '%U %S' -o "build/fuzz/$n.cpu" \
            "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$crashes" "${opts[@]}" \
            "build/corpus/$n" "fuzz/corpus/$n" >> "$log" 2>&1
        rc=$?
        wall=$((wall + secs))
        cpu=$(awk -v c="$cpu" 'END { if (NF == 2) c += $1 + $2; printf "%.0f", c }' "build/fuzz/$n.cpu" 2>/dev/null)
        run_execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        execs=$((execs + ${run_execs:-0}))
        grep -q 'Test unit written to' "$log" && break
        [ "$rc" -eq 0 ] && [ "${cpu:-0}" -lt "${cpu_goal:-0}" ] || break
    done

    # The last status line: "#N  DONE  cov: C ft: F corp: U/SIZE ... exec/s: E ...".
    status=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
    field() { sed -n "s/.* $1: \([^ ]*\).*/\1/p" <<< "$status"; }
    rate=$((execs / (wall > 0 ? wall : 1)))
    found=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log")
    nfound=$(grep -c . <<< "$found")

    summary+=("$(printf '%-14s %7s %7s %11s %8s %6s %7s %-14s %7s' "$n" "$wall" "${cpu:-?}" \
        "${execs:-?}" "${rate:-?}" "$(field cov)" "$(field ft)" "$(field corp)" "$nfound")")
    if [ "$rc" -ne 0 ] || [ "$nfound" -ne 0 ]; then
        failed+=("$n")
        tail -40 "$log"
        for f in $found; do
            echo "fuzz: $n found a crash; reproduce with: $bin $f"
        done
        [ -n "$found" ] || echo "fuzz: $n exited with status $rc and wrote no reproducer (log $log)"
    fi
done

echo
printf '%-14s %7s %7s %11s %8s %6s %7s %-14s %7s\n' \
    target seconds cpu_s execs exec/s cov ft corpus crashes
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi

# shellcheck shell=bash disable=SC2154
# compare-runs.sh - a run's logits against the reference interpreter's,
# with routing swaps looked for and verified. Sourced by scripts/gpu-check.sh
# (and test/Tools/check-run-routing-swaps.test); expects $bin, the directory
# of jamba-interpret and jamba-compare-logits.
#
# check_run RUN REFERENCE MARGINS IDS PROMPT TOLERANCE prints the comparison
# of RUN.npy with REFERENCE.npy (jamba-compare-logits: the max relative
# error of each row within TOLERANCE; IDS, the comma-separated ids the run
# chose after PROMPT, each the reference's argmax or a near-tie; a row beyond
# that at a routing near-tie in MARGINS.npy, a swap not compared past) and
# returns its status. Where the run leaves the reference, verify_swaps looks
# for the routing swap that explains it; REFERENCE's directory holds
# interpret.args (the reference's checkpoint, --gemm-inputs and
# --expert-inputs, one per line) for the reruns.

# A routing near-tie: a router's k-th and (k+1)-th logits within a quarter
# of the logits' tolerance of each other (relative to the largest).
routing_tolerance() { awk -v t="$1" 'BEGIN { print t / 4 }'; }

# The number of ids in a comma-separated list.
count_ids() { echo "$1" | awk -F, '{ print NF }'; }

# jamba-compare-logits: run $1.npy against reference $2.npy (margins
# $3.npy), ids $4 chosen after prompt $5, tolerance $6.
compare_logits() { # run reference margins ids prompt tolerance
  "$bin/jamba-compare-logits" "$1.npy" "$2.npy" --tolerance "$6" \
    --chosen-ids "$4" --ids-from-row $(($(count_ids "$5") - 1)) \
    --routing-margins "$3.npy" --routing-tolerance "$(routing_tolerance "$6")" 2>&1
}

# The row where jamba-compare-logits' report $1 says the run first left the
# reference: the first of its first row beyond the tolerance, its first
# chosen id that is not the reference's argmax or a near-tie, and the
# routing swap it did not compare past; empty if none.
problem_row() {
  grep -o -e '(first at row [0-9]*' -e 'id [0-9]* (row [0-9]*)' \
    -e 'routing swap at row [0-9]*' <<<"$1" | grep -o '[0-9]*)\?$' | tr -d ')' |
    sort -n | head -1
}

# Verified routing swaps. Where the run ($2) leaves the reference at row R
# (problem_row of the report in the global cmpout), the reference is rerun
# with routers swapped at position R (jamba-interpret --swap-routing: the
# token's (k+1)-th expert in place of its k-th, as rounding picks at a
# near-tie): each router alone, then each pair (a swap can bring the next
# layer's router to a near-tie too). The first candidate whose swaps all
# have a routing margin within the tolerance and after which the run
# matches the reference up to R and past it (problem_row, if any, is later)
# is kept, and the search goes on from that row (three rows at most). Sets
# cmpout and rc to the final comparison and swaps_note to the swaps kept.
# The references' settings come from the interpret.args run_refs wrote
# beside $1.
verify_swaps() { # reference run ids prompt tolerance
  local refdir args at r r2 found tries=0 swaps="" routers
  local run=$2 fed="$4${3:+,$3}" ids=$3 prompt=$4 tol=$5 tmp
  refdir=$(dirname "$1")
  tmp="$refdir/swapped"
  mapfile -t args <"$refdir/interpret.args" || return 0
  swaps_note=""
  # Tries routers "$@" at position $at on top of $swaps; returns 2 if the
  # interpreter refused (no such router), 1 if the candidate fails.
  try_swaps() {
    local try=$swaps out m margins="" again rc2 next s
    for s in "$@"; do try="${try:+$try,}$s:$at"; done
    out=$("$bin/jamba-interpret" "${args[0]}" --prompt-ids "$fed" -n 0 \
      --gemm-inputs "${args[1]}" --expert-inputs "${args[2]}" --swap-routing "$try" \
      --logits-out "$tmp.npy" --routing-margins-out "$tmp.margins.npy" 2>&1 >/dev/null) || return 2
    for s in "$@"; do
      m=$(sed -n "s/.*routing swap: router $s, position $at: .*(routing margin \(.*\))$/\1/p" <<<"$out")
      awk -v m="$m" -v t="$tol" 'BEGIN { exit !(m != "" && m + 0 <= t + 0) }' || return 1
      margins="${margins:+$margins, }router $s at position $at (margin $m)"
    done
    again=$(compare_logits "$run" "$tmp" "$tmp.margins" "$ids" "$prompt" "$tol")
    rc2=$?
    next=$(problem_row "$again")
    [ -z "$next" ] || [ "$next" -gt "$at" ] || return 1
    cmpout=$again
    rc=$rc2
    swaps=$try
    swaps_note="${swaps_note:+$swaps_note; }$margins"
  }
  while [ $tries -lt 3 ] && at=$(problem_row "$cmpout") && [ -n "$at" ]; do
    tries=$((tries + 1))
    found=""
    routers=0
    for ((r = 0; r < 64; ++r)); do
      try_swaps $r
      case $? in
      0) found=1 && break ;;
      2) break ;;
      esac
      routers=$((r + 1))
    done
    for ((r = 0; r < routers && !found; ++r)); do
      for ((r2 = r + 1; r2 < routers; ++r2)); do
        try_swaps $r $r2 && found=1 && break
      done
    done
    [ -n "$found" ] || break
  done
}

# The comparison of run $1 with reference $2 (margins $3; ids $4 after
# prompt $5; tolerance $6), verified swaps appended; jamba-compare-logits'
# status after them.
check_run() { # run reference margins ids prompt tolerance
  local cmpout rc swaps_note=""
  cmpout=$(compare_logits "$1" "$2" "$3" "$4" "$5" "$6")
  rc=$?
  [ -z "$(problem_row "$cmpout")" ] || verify_swaps "$2" "$1" "$4" "$5" "$6"
  printf '%s\n' "$cmpout${swaps_note:+; routing swaps verified (the run matches the reference routed so): $swaps_note}"
  return $rc
}

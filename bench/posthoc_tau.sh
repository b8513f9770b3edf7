#!/usr/bin/env bash
# How much of a recipe's result is its post-hoc tau: re-scores the final checkpoint of
# every kept seed of RECIPE (both implementations; PyTorch's state_dicts load through
# the same recipe) at fixed taus with `longtail eval --posthoc-tau`, on the test and the
# validation split, beside the tau each run chose on validation.
#
#   bash bench/posthoc_tau.sh [--data default|lt500] [RECIPE] [TAU ...]
#   (default: --data default, hs24/wd_fr_etf_multla, taus 0 0.2 0.4 0.5 0.65 0.8 1)
#
# Reads runs/results/DATA/IMPL/RECIPE/seedS/ (bench/results.sh keeps them); prints a
# Markdown table: one row per run, "test / val" top-1 (%) per tau. Env: LONGTAIL.
set -eu
. "$(dirname "$0")/kept_runs.sh"
data=default
if [ "${1:-}" = --data ]; then data=$2; shift 2; fi
sets_line=$(eval_sets "$data")   # exits here on an unknown --data
read -r -a sets <<< "$sets_line"
recipe=${1:-hs24/wd_fr_etf_multla}
[ $# -gt 0 ] && shift
taus=("$@")
[ ${#taus[@]} -gt 0 ] || taus=(0 0.2 0.4 0.5 0.65 0.8 1)
ini="$root/configs/$recipe.fmnist.ini"
[ -f "$ini" ] || { echo "posthoc_tau.sh: no recipe $ini" >&2; exit 2; }

score() {  # CKPT KIND TAU -> "test / val"
  "$LONGTAIL" eval "$1" --recipe "$ini" "${sets[@]}" --posthoc "$2" --posthoc-tau "$3" --split both |
    awk '/top-1/ { v[n++] = $2 } END { sub(/%/, "", v[0]); sub(/%/, "", v[1]); printf "%s / %s", v[0], v[1] }'
}

printf '| run | chosen tau | at chosen tau |'
for t in "${taus[@]}"; do printf ' tau %s |' "$t"; done
printf '\n|---|---|---|'
for _ in "${taus[@]}"; do printf -- '---|'; done
printf '\n'
for impl in longtail torch; do
  for dir in "$root/runs/results/$data/$impl/$recipe"/seed*; do
    [ -d "$dir" ] || continue
    ck=$(last_stage "$dir")
    [ -n "$ck" ] || continue
    kind=$(posthoc_arg "$(run_field "$dir/metrics.json" posthoc)")
    [ "$kind" != none ] || { echo "posthoc_tau.sh: $dir used no post-hoc transform" >&2; exit 2; }
    chosen=$(run_field "$dir/metrics.json" posthoc_tau)
    printf '| %s %s | %s | %s |' "$impl" "$(basename "$dir")" "$chosen" "$(score "$ck" "$kind" "$chosen")"
    for t in "${taus[@]}"; do printf ' %s |' "$(score "$ck" "$kind" "$t")"; done
    printf '\n'
  done
done

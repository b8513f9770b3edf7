#!/usr/bin/env bash
# How much of a recipe's result is its post-hoc tau: re-scores the final checkpoint of
# every recorded seed of RECIPE (both implementations; PyTorch's state_dicts load
# through the same recipe) at fixed taus with `longtail eval --posthoc-tau`, on the
# validation and the test split, beside the tau each run chose on validation.
#
#   bash bench/posthoc_tau.sh [--data default|lt500] [RECIPE] [TAU ...]
#   (default: --data default, hs24/wd_fr_etf_multla, taus 0 0.2 0.4 0.5 0.65 0.8 1)
#
# Reads runs/results/DATA/IMPL/RECIPE/seedS/ (bench/results.sh keeps them); prints a
# Markdown table: one row per run, "test / val" top-1 (%) per tau. Env: LONGTAIL.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
LONGTAIL="${LONGTAIL:-$root/build/longtail}"
data=default
if [ "${1:-}" = --data ]; then data=$2; shift 2; fi
case "$data" in lt500|default) ;; *) echo "posthoc_tau.sh: --data must be lt500 or default" >&2; exit 2 ;; esac
recipe=${1:-hs24/wd_fr_etf_multla}
[ $# -gt 0 ] && shift
taus=("$@")
[ ${#taus[@]} -gt 0 ] || taus=(0 0.2 0.4 0.5 0.65 0.8 1)
ini="$root/configs/$recipe.fmnist.ini"
[ -f "$ini" ] || { echo "posthoc_tau.sh: no recipe $ini" >&2; exit 2; }
[ -x "$LONGTAIL" ] || { echo "posthoc_tau.sh: build longtail first ($LONGTAIL)" >&2; exit 2; }
sets=(--set run.threads=1)
[ "$data" = lt500 ] && sets+=(--set data.n_max=500 --set eval.groups=count)

# the last stage's checkpoint and its recorded transform
last_stage() { ls "$1"/stage*.safetensors 2> /dev/null | sort -V | tail -1; }
kind_of() {  # the recipe's posthoc key of the last stage, in --posthoc spelling
  awk -F= '/^\[stage/ { k = "" } /^[ \t]*posthoc[ \t]*=/ { v = $2; sub(/#.*/, "", v); gsub(/[ \t]/, "", v); k = v }
           END { print k }' "$ini"
}
kind=$(kind_of)
[ -n "$kind" ] && [ "$kind" != none ] || { echo "posthoc_tau.sh: $recipe has no post-hoc transform" >&2; exit 2; }

score() {  # CKPT TAU -> "test / val"
  "$LONGTAIL" eval "$1" --recipe "$ini" "${sets[@]}" --posthoc "$kind" --posthoc-tau "$2" --split both |
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
    chosen=$(grep -o '"posthoc_tau": *[0-9.e+-]*' "$dir/metrics.json" | tail -1 | sed 's/.*: *//')
    printf '| %s %s | %s | %s |' "$impl" "$(basename "$dir")" "$chosen" "$(score "$ck" "$chosen")"
    for t in "${taus[@]}"; do printf ' %s |' "$(score "$ck" "$t")"; done
    printf '\n'
  done
done

#!/usr/bin/env bash
# Cross-evaluation: scores every kept PyTorch run's final checkpoint with `longtail eval`
# (same recipe, same subset, PyTorch's own post-hoc transform and tau) and compares the
# test top-1 with the one PyTorch reported. Agreement means the two implementations
# build the same data, model, normalization, post-hoc transform and metric; a
# difference points at one of them, not at training.
#
#   bash bench/cross_eval.sh [--data default|lt500] [--seeds 0,1,2] [RECIPE ...]
#   (default: --data default, every seed kept, every recipe with PyTorch runs)
#
# Reads runs/results/DATA/torch/RECIPE/seedS/ (kept by bench/results.sh); prints a
# Markdown table and the largest difference; exits 1 if any differs by more than
# 0.05 points (one test image in 2,000). Env: LONGTAIL.
set -eu
. "$(dirname "$0")/kept_runs.sh"
data=default
seeds=
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    -*) echo "cross_eval.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
sets_line=$(eval_sets "$data")   # exits here on an unknown --data
read -r -a sets <<< "$sets_line"
base="$root/runs/results/$data/torch"
recipes=("$@")
if [ ${#recipes[@]} -eq 0 ]; then
  while IFS= read -r d; do recipes+=("${d#"$base"/}"); done < <(find "$base" -mindepth 2 -maxdepth 2 -type d | sort)
fi

printf '| recipe | seed | post-hoc | PyTorch top-1 | longtail eval top-1 | Δ |\n|---|---|---|---|---|---|\n'
worst=0
n=0
bad=0
for r in "${recipes[@]}"; do
  ini="$root/configs/$r.fmnist.ini"
  [ -f "$ini" ] || { echo "cross_eval.sh: no recipe $ini" >&2; exit 2; }
  for dir in "$base/$r"/seed*; do
    [ -d "$dir" ] || continue
    s=${dir##*seed}
    if [ -n "$seeds" ] && ! [[ ",$seeds," == *",$s,"* ]]; then continue; fi
    ck=$(last_stage "$dir")
    [ -n "$ck" ] && [ -f "$dir/metrics.json" ] || continue
    want=$(run_field "$dir/metrics.json" top1)
    tau=$(run_field "$dir/metrics.json" posthoc_tau)
    k=$(posthoc_arg "$(run_field "$dir/metrics.json" posthoc)")
    args=(--posthoc "$k")
    case "$k" in taunorm|la_add|la_mul) args+=(--posthoc-tau "$tau") ;; esac
    got=$("$LONGTAIL" eval "$ck" --recipe "$ini" "${sets[@]}" "${args[@]}" --json 2>&1 |
          /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['test']['top1'])" 2> /dev/null) || got=error
    if [ "$got" = error ]; then
      d=error
      bad=$((bad + 1))
    else
      d=$(awk -v a="$got" -v b="$want" 'BEGIN { printf "%+.2f", 100 * (a - b) }')
      worst=$(awk -v w="$worst" -v d="$d" 'BEGIN { d = d < 0 ? -d : d; print (d > w ? d : w) }')
      awk -v d="$d" 'BEGIN { exit !(d > 0.05 || d < -0.05) }' && bad=$((bad + 1))
    fi
    n=$((n + 1))
    printf '| `%s` | %s | %s%s | %s | %s | %s |\n' "$r" "$s" "$k" "${tau:+ τ $tau}" \
      "$(awk -v a="$want" 'BEGIN { printf "%.2f", 100 * a }')" \
      "$( [ "$got" = error ] && echo error || awk -v a="$got" 'BEGIN { printf "%.2f", 100 * a }')" "$d"
  done
done
echo
echo "$n checkpoints; largest |Δ| $worst points; $bad over 0.05 points or not scored."
[ "$bad" = 0 ]

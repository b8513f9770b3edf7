#!/usr/bin/env bash
# Runs the recipes of docs/results.md and keeps one compact record per run.
#
#   bash bench/results.sh [--data lt500|default] [--impl longtail|torch] [--seeds 0,1,2]
#                         [--jobs N] [--threads T] [RECIPE ...]
#
# RECIPE is a name under configs/ without the suffix (wb/naive, losses/ldam_drw, ...); with
# none given, every recipe of the table. Each run goes to runs/results/DATA/IMPL/RECIPE/seedS
# (a normal run directory, resumed if a run was cut off) and, once finished, its record to
# bench/results/DATA/IMPL/RECIPE/seedS.json (bench/results_record.py). A run whose record
# exists is skipped, so the script can be stopped and started again at any time.
# docs/results.md is then written by: /usr/bin/python3 bench/results_report.py
#
# The two Fashion-MNIST-LT versions (IF 100, 20 validation images per class):
#   default  n_max 5980, the recipes' own schedule (stage 1: 40 epochs)
#   lt500    n_max 500 (500, 299, ..., 5 images per class), the published schedule:
#            stage 1 runs 200 epochs; step schedules warm up 5 epochs and decay at 160 and
#            180, DRW switches on at 160, LAS's stage 2 runs 10 epochs (as the CIFAR
#            recipes). Many / Medium / Few by
#            the standard thresholds (> 100, 20 ... 100, < 20 images): 4 / 3 / 3 classes.
# Recipes whose stage 1 is the same training run (same keys, same seed) share it: wb/wd's
# stage 1 is trained once per seed and the others start from its checkpoint with
# model.init and stage1.epochs = 0 (the same weights a full run would reach: training is
# deterministic for a seed and thread count).
#
# --impl torch runs bench/torch_reference.py on the same data and schedule instead.
# Env: LONGTAIL (default build/longtail), PYTHON (default /usr/bin/python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
LONGTAIL="${LONGTAIL:-$root/build/longtail}"
PYTHON="${PYTHON:-/usr/bin/python3}"

data=lt500; impl=longtail; seeds=0,1,2; jobs=2; threads=1; recipes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --impl) impl="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "results.sh: unknown option $1" >&2; exit 2 ;;
    *) recipes+=("$1"); shift ;;
  esac
done
case "$data" in lt500|default) ;; *) echo "results.sh: --data must be lt500 or default" >&2; exit 2 ;; esac
case "$impl" in longtail|torch) ;; *) echo "results.sh: --impl must be longtail or torch" >&2; exit 2 ;; esac

# The rows of the table, in order (issue 5, then issue 6).
all=(wb/naive wb/wd wb/wd_l2norm wb/wd_taunorm wb/wd_cb_wd_maxnorm
     iwb/nc iwb/nc_hc iwb/nc_hc_cb iwb/mse hs24/wd_fr_etf_multla decouple/crt decouple/lws
     losses/ce losses/focal losses/cb_focal losses/ldam_drw losses/balanced_softmax
     losses/la_loss losses/eql losses/seql losses/las
     sampling/sqrt sampling/class_aware sampling/progressive)
# Recipes whose [stage1] is wb/wd's (checked below, key by key).
shares_wd=(wb/wd_l2norm wb/wd_taunorm wb/wd_cb_wd_maxnorm iwb/nc iwb/nc_hc iwb/nc_hc_cb
           iwb/mse decouple/crt)
[ ${#recipes[@]} -gt 0 ] || recipes=("${all[@]}")

stage1_keys() {  # the [stage1] and [model] keys of a recipe, comments and blanks dropped
  awk '/^\[/{s=$1; next} s=="[stage1]"||s=="[model]"{sub(/[#;].*/,""); gsub(/[ \t]/,""); if($0!="")print s $0}' "$1" \
    | grep -v '^\[stage1\]posthoc' | sort
}
is_shared() {
  local r
  for r in "${shares_wd[@]}"; do [ "$r" = "$1" ] && return 0; done
  return 1
}

overrides() {  # --set arguments for recipe $1 on $data
  local f="$root/configs/$1.fmnist.ini"
  if [ "$data" = lt500 ]; then
    echo "--set data.n_max=500 --set stage1.epochs=200 --set eval.groups=count"
    if awk '/^\[/{s=$1} s=="[stage1]" && /^schedule *= *step/{f=1} END{exit !f}' "$f"; then
      echo "--set stage1.warmup_epochs=5 --set stage1.milestones=160,180"
    fi
    if awk '/^\[/{s=$1} s=="[stage1]" && /^drw_epoch/{f=1} END{exit !f}' "$f"; then
      echo "--set stage1.drw_epoch=160"
    fi
    # LAS's classifier stage: 10 epochs as published (MiSLAS, CIFAR), 5 in the scaled recipe
    [ "$1" = losses/las ] && echo "--set stage2.epochs=10"
  fi
  return 0
}

run_one() {  # recipe seed
  if [ "$1" = wb/wd ]; then
    mkdir -p "$root/runs/results"
    ( flock 9; run_inner "$1" "$2" ) 9>"$root/runs/results/.wd-$data-$impl-$2.lock"
  else
    run_inner "$1" "$2"
  fi
}

run_inner() {  # recipe seed [record path]
  local r="$1" s="$2"
  local rec="${3:-$here/results/$data/$impl/$r/seed$s.json}"
  local dir="$root/runs/results/$data/$impl/$r/seed$s"
  [ -f "$rec" ] && return 0
  local f="$root/configs/$r.fmnist.ini"
  local args; args=$(overrides "$r")
  local from=""
  if is_shared "$r"; then
    if ! diff <(stage1_keys "$f") <(stage1_keys "$root/configs/wb/wd.fmnist.ini") >/dev/null; then
      echo "results.sh: $r: [stage1] differs from wb/wd's; run it on its own" >&2; return 1
    fi
    from="$root/runs/results/$data/$impl/wb/wd/seed$s/stage1.safetensors"
    # wb/wd of this seed may be running in another lane: wait for it (or run it) under
    # its lock, so that one process trains it
    # A recorded wb/wd whose checkpoint is gone (a fresh clone: runs/ is not committed) is
    # trained again and must match its record.
    ( flock 9
      if [ ! -f "$here/results/$data/$impl/wb/wd/seed$s.json" ]; then run_inner wb/wd "$s"
      elif [ ! -f "$from" ]; then regen_wd "$s"; fi ) \
      9>"$root/runs/results/.wd-$data-$impl-$s.lock" || return 1
    args="$args --set model.init=$from --set stage1.epochs=0"
  fi
  mkdir -p "$dir" "$(dirname "$rec")"
  local t0; t0=$(date +%s)
  echo "[$(date +%H:%M:%S)] start $data $impl $r seed $s"
  if [ "$impl" = longtail ]; then
    local mode=--force
    [ -f "$dir/last.safetensors" ] && [ -f "$dir/config.ini" ] && mode=--resume
    # shellcheck disable=SC2086
    "$LONGTAIL" train "$f" $args --seed "$s" --threads "$threads" --out "$dir" $mode --quiet \
      > "$dir/stdout.txt" 2>&1 || { echo "results.sh: $r seed $s failed, see $dir/stdout.txt" >&2; return 1; }
  else
    # shellcheck disable=SC2086
    OMP_NUM_THREADS="$threads" "$PYTHON" "$here/torch_reference.py" "$f" $args --seed "$s" \
      --threads "$threads" --out "$dir" --longtail "$LONGTAIL" > "$dir/stdout.txt" 2>&1 \
      || { echo "results.sh: torch $r seed $s failed, see $dir/stdout.txt" >&2; return 1; }
  fi
  "$PYTHON" "$here/results_record.py" "$dir/metrics.json" "$rec" --recipe "$r" --data "$data" \
    --impl "$impl" --seconds $(( $(date +%s) - t0 )) ${from:+--stage1-from "wb/wd seed $s"}
  echo "[$(date +%H:%M:%S)] done  $data $impl $r seed $s ($(( $(date +%s) - t0 )) s)"
}
regen_wd() {  # seed: wb/wd's stage 1 again, checked against the committed record
  local s="$1" rec="$here/results/$data/$impl/wb/wd/seed$1.json"
  local again="$root/runs/results/$data/$impl/wb/wd/seed$s/again.json"
  rm -f "$again"
  echo "[$(date +%H:%M:%S)] wb/wd seed $s: checkpoint missing, training it again"
  run_inner wb/wd "$s" "$again" || return 1
  "$PYTHON" - "$rec" "$again" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
key = lambda r: [(st["selected_epoch"], st["top1"], st["many"], st["medium"], st["few"]) for st in r["stages"]]
if key(a) != key(b):
    sys.exit(f"results.sh: wb/wd trained again differs from its record {sys.argv[1]}: {key(b)} vs {key(a)}")
EOF
}
export -f run_one run_inner regen_wd overrides is_shared stage1_keys
export root here data impl threads LONGTAIL PYTHON
export shares_wd_list="${shares_wd[*]}"

# Per seed: wb/wd (the shared stage 1) and wb/naive side by side, then the recipes that
# start from wb/wd's stage 1 (a stage 2 only: minutes), then the rest; seed 0 of every
# recipe before seed 1.
order() {
  local s r
  for s in ${seeds//,/ }; do
    for r in wb/wd wb/naive; do
      for x in "${recipes[@]}"; do [ "$x" = "$r" ] && echo "$r $s"; done
    done
    for r in "${recipes[@]}"; do
      if is_shared "$r"; then echo "$r $s"; fi
    done
    for r in "${recipes[@]}"; do
      case "$r" in wb/wd|wb/naive) continue ;; esac
      if is_shared "$r"; then continue; fi
      echo "$r $s"
    done
  done
  return 0
}
mkdir -p "$root/runs/results"
order | xargs -r -P "$jobs" -L 1 bash -c 'shares_wd=($shares_wd_list); run_one "$0" "$1"'

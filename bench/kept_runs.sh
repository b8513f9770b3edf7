# Sourced by bench/cross_eval.sh and bench/posthoc_tau.sh: re-scoring the runs that
# bench/results.sh keeps in runs/results/DATA/IMPL/RECIPE/seedS/ with `longtail eval`.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LONGTAIL="${LONGTAIL:-$root/build/longtail}"
[ -x "$LONGTAIL" ] || { echo "$(basename "$0"): build longtail first ($LONGTAIL)" >&2; exit 2; }

# eval_sets DATA: the --set arguments that rebuild DATA's subset and groups (as results.sh)
eval_sets() {
  case "$1" in
    default) echo "--set run.threads=1" ;;
    lt500) echo "--set run.threads=1 --set data.n_max=500 --set eval.groups=count" ;;
    *) echo "$(basename "$0"): --data must be lt500 or default" >&2; exit 2 ;;
  esac
}
# last_stage DIR: the run's final stage checkpoint
last_stage() { ls "$1"/stage*.safetensors 2> /dev/null | sort -V | tail -1; }
# run_field METRICS KEY: KEY of the last stage in a metrics.json ("" when null)
run_field() {
  /usr/bin/python3 -c "import json,sys; v=json.load(open(sys.argv[1]))['stages'][-1].get(sys.argv[2]); print('' if v is None else v)" "$1" "$2"
}
# posthoc_arg NAME: a metrics.json posthoc name as `longtail eval --posthoc` spells it
posthoc_arg() {
  case "$1" in
    ''|none) echo none ;;
    tau_norm) echo taunorm ;;
    la_additive) echo la_add ;;
    la_multiplicative) echo la_mul ;;
    *) echo "$(basename "$0"): unknown post-hoc '$1'" >&2; exit 2 ;;
  esac
}

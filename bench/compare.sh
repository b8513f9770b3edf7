#!/usr/bin/env bash
# Runs `longtail bench` and bench/torch_resnet.py alternately (A B A B ...) on the same
# model, batch, input and thread count, then prints each side's median and the ratio
# longtail / PyTorch for training and inference.
#
#   bash bench/compare.sh [--rounds R] [any `longtail bench` option ...]
# Defaults: --model resnet32 --batch 128 --input 3x32x32 --steps 10, all cores, 2 rounds.
# Env: LONGTAIL (default build/longtail), PYTHON (default /usr/bin/python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
LONGTAIL="${LONGTAIL:-$root/build/longtail}"
PYTHON="${PYTHON:-/usr/bin/python3}"

rounds=2
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
have() { for a in "${args[@]+"${args[@]}"}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
have --model || args+=(--model resnet32)
have --batch || args+=(--batch 128)
have --input || args+=(--input 3x32x32)
have --steps || args+=(--steps 10)
have --threads || args+=(--threads "$(nproc)")

[ -x "$LONGTAIL" ] || { echo "compare.sh: $LONGTAIL not built (run make)" >&2; exit 1; }
"$PYTHON" -c "import torch" 2>/dev/null || { echo "compare.sh: $PYTHON has no torch (apt-get install python3-torch)" >&2; exit 1; }

# figure KIND FILE: the img/s number of the line starting with KIND.
figure() { awk -v k="$1" '$1 == k { for (i = 1; i < NF; i++) if ($(i + 1) == "img/s") print $i }' "$2"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "bench: ${args[*]}, $rounds rounds, alternating longtail / PyTorch"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  "$LONGTAIL" bench "${args[@]}" | tee "$tmp/lt.$r" | sed 's/^/  longtail  /'
  "$PYTHON" "$here/torch_resnet.py" "${args[@]}" | tee "$tmp/pt.$r" | sed 's/^/  pytorch   /'
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) (a load above 0 on a shared machine skews both sides)"
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
best() { sort -g | tail -1; }
# The median of the rounds is the headline figure; the best round is printed too because
# on a shared machine interference only ever slows a run down.
for kind in train infer; do
  lt_all=$(for r in $(seq 1 "$rounds"); do figure "$kind" "$tmp/lt.$r"; done)
  pt_all=$(for r in $(seq 1 "$rounds"); do figure "$kind" "$tmp/pt.$r"; done)
  lt=$(echo "$lt_all" | median); pt=$(echo "$pt_all" | median)
  ltb=$(echo "$lt_all" | best); ptb=$(echo "$pt_all" | best)
  awk -v k="$kind" -v a="$lt" -v b="$pt" -v ab="$ltb" -v bb="$ptb" \
    'BEGIN { printf "%s: longtail %.1f img/s, PyTorch %.1f img/s, ratio longtail/PyTorch %.2fx (best rounds: %.1f vs %.1f, %.2fx)\n", k, a, b, a / b, ab, bb, ab / bb }'
done

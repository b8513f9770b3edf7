#!/usr/bin/env bash
# Bit-identity of training: every Fashion-MNIST recipe of configs/ (the 24 rows of
# docs/results.md) trained on a tiny generated dataset for a short schedule (2 + 1 epochs,
# one thread, seed 0) must give checkpoints whose tensors hash to the digests stored in
# tests/golden/checkpoints.sha256 — the same bytes as the code that wrote that file.
# A change meant to alter no number must pass this unchanged.
#
#   bash tests/golden.sh BINARY               check (make test runs it)
#   bash tests/golden.sh BINARY --regenerate  rewrite tests/golden/checkpoints.sha256
#
# Regenerate only in a commit whose change is meant to alter numbers, say so in its
# message, and re-run the affected rows of docs/results.md. The digests cover the tensors
# (names, dtypes, shapes, bytes), not the metadata. Both the binary and oneDNN must be
# held to one ISA level for the digests to hold on any x86-64 with AVX2: `make test` builds
# BINARY with -march=x86-64-v3 (with -march=native an `omp simd` reduction sums in as many
# lanes as the CPU has, and AVX-512 machines round differently), and this script pins
# oneDNN's kernels with ONEDNN_MAX_CPU_ISA=AVX2. The stored digests were written by the
# pre-models code (commit 8526d1a) built that way.
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -u
BIN=${1:?usage: tests/golden.sh BINARY [--regenerate]}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
regen=0; [ "${2:-}" = --regenerate ] && regen=1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
GOLD=$here/golden/checkpoints.sha256
T=$(mktemp -d "${TMPDIR:-/tmp}/longtail-golden.XXXXXX")
trap 'rm -rf "$T"' EXIT
export LC_ALL=C ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1
tiny_fmnist "$T/data"

recipes=$(cd "$root/configs" && ls */*.fmnist.ini | sed 's/\.fmnist\.ini$//' | sort)
has() { awk -v s="[$2]" -v k="$3" '/^\[/{x=$1} x==s && $1==k {f=1} END{exit !f}' "$1"; }
pass=0; fail=0
: > "$T/got"
for r in $recipes; do
    f=$root/configs/$r.fmnist.ini
    set -- --set data.root="$T/data" --set data.imbalance=10 --set data.val_per_class=4 \
        --set model.width=0.25 --set stage1.epochs=2 --set stage1.batch_size=16 \
        --set eval.batch_size=64 --set run.threads=1
    has "$f" stage1 milestones && set -- "$@" --set stage1.milestones=1 --set stage1.factors=0.1
    has "$f" stage1 drw_epoch && set -- "$@" --set stage1.drw_epoch=1
    if grep -q '^\[stage2\]' "$f"; then set -- "$@" --set stage2.epochs=1 --set stage2.batch_size=16; fi
    if ! "$BIN" train "$f" "$@" --out "$T/$r" --quiet > "$T/log" 2>&1; then
        fail=$((fail + 1)); echo "FAIL $r: training failed: $(tail -c 300 "$T/log")"; continue
    fi
    for ck in "$T/$r"/stage*.safetensors; do
        echo "$r/$(basename "$ck" .safetensors) $(tensor_digest "$ck")" >> "$T/got"
    done
done
if [ $regen = 1 ]; then
    mkdir -p "$(dirname "$GOLD")"
    cp "$T/got" "$GOLD.tmp" && mv "$GOLD.tmp" "$GOLD"
    echo "wrote $GOLD ($(wc -l < "$GOLD") checkpoints)"
    echo "0 passed, $fail failed"
    [ "$fail" = 0 ]; exit
fi
while read -r name want; do
    got=$(awk -v n="$name" '$1==n {print $2}' "$T/got")
    if [ "$got" = "$want" ]; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name: tensors differ from the stored digest (${got:-no checkpoint})"; fi
done < "$GOLD"
extra=$(awk 'NR==FNR {k[$1]=1; next} !($1 in k) {print $1}' "$GOLD" "$T/got")
for e in $extra; do fail=$((fail + 1)); echo "FAIL $e: a checkpoint with no stored digest"; done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

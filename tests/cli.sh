#!/usr/bin/env bash
# End-to-end tests of the `longtail` command: a tiny Fashion-MNIST-shaped IDX dataset
# written here, a two-stage run, `longtail eval` and its post-hoc overrides, `longtail
# data`, and the bad-input contract (a one-line error naming what and where, exit 1 or 2,
# never a crash, never a partial or overwritten output).
#
#   bash tests/cli.sh BINARY     (make test runs it on the release and the ASan build)
#
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -u
BIN=${1:?usage: tests/cli.sh BINARY}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
[ -x "$BIN" ] || { echo "cli.sh: $BIN is not an executable"; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/longtail-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
export LC_ALL=C
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1: $2"; echo "FAIL $1"; }

# run NAME WANT_RC CMD...: runs CMD with stdout in $T/out, stderr in $T/err; checks the
# exit status (never a signal: 128+ fails even when a non-zero status was wanted).
run() {
    local name=$1 want=$2
    shift 2
    "$@" > "$T/out" 2> "$T/err"
    rc=$?
    if [ "$rc" -ge 128 ]; then bad "$name" "killed by signal $((rc - 128)): $(tail -c 400 "$T/err")"; return 1; fi
    if [ "$rc" != "$want" ]; then bad "$name" "exit $rc, want $want: $(tail -c 400 "$T/err")"; return 1; fi
    return 0
}
# an error: exactly one stderr line, starting "longtail: error:", containing every pattern
one_line_error() {
    local name=$1
    shift
    local n
    n=$(wc -l < "$T/err")
    if [ "$n" != 1 ]; then bad "$name" "want one stderr line, got $n: $(head -c 400 "$T/err")"; return 1; fi
    if ! grep -q '^longtail: error: ' "$T/err"; then bad "$name" "not a longtail error: $(cat "$T/err")"; return 1; fi
    for p in "$@"; do
        if ! grep -qF -- "$p" "$T/err"; then bad "$name" "error does not name '$p': $(cat "$T/err")"; return 1; fi
    done
    ok "$name"
}
expect_error() {   # NAME RC PATTERNS... -- CMD...
    local name=$1 want=$2
    shift 2
    local pats=()
    while [ "$1" != -- ]; do pats+=("$1"); shift; done
    shift
    run "$name" "$want" "$@" && one_line_error "$name" "${pats[@]}"
}

# ---- data: IDX files, 10 classes, 30 training and 6 test images of 28 x 28 per class
# (tests/lib.sh).
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
FX=$(cd "$(dirname "$0")" && pwd)/fixtures
D=$T/data
tiny_fmnist "$D"

R=$T/tiny.ini
cat > "$R" <<EOF
[data]
dataset = fmnist
root = $D
imbalance = 10
val_per_class = 4
[model]
arch = resnet8
width = 0.25
[stage1]
epochs = 2
batch_size = 16
lr = 0.05
weight_decay = 5e-3
[stage2]
epochs = 1
batch_size = 16
lr = 0.05
train = classifier
maxnorm = true
posthoc = taunorm
select = last
[eval]
groups = rank
batch_size = 64
[run]
threads = 1
EOF

# ---- `longtail data`
if run data_json 0 "$BIN" data --root "$D" --imbalance 10 --val-per-class 4 --json; then
    # n_i = int(26 * 10^(-i/9)) (n_max = 30 - 4 validation images), by hand
    if grep -q '"train_counts": \[26, 20, 15, 12, 9, 7, 5, 4, 3, 2\]' "$T/out" &&
        grep -q '"val_counts": \[4, 4, 4, 4, 4, 4, 4, 4, 4, 4\]' "$T/out" &&
        grep -q '"imbalance_factor": 13,' "$T/out"; then ok data_json
    else bad data_json "unexpected JSON: $(head -c 300 "$T/out")"; fi
fi

# ---- a two-stage run
RUN=$T/run
if run train_two_stages 0 "$BIN" train "$R" --out "$RUN" --quiet; then
    missing=
    for f in config.ini metrics.json stage1.safetensors stage2.safetensors; do [ -s "$RUN/$f" ] || missing="$missing $f"; done
    if [ -z "$missing" ] && grep -q '"tau_norm"' "$RUN/metrics.json"; then ok train_two_stages
    else bad train_two_stages "missing:$missing or no tau_norm in metrics.json"; fi
fi

# an existing run directory is not overwritten without --force
sum_before=$(cat "$RUN"/* 2> /dev/null | cksum)
expect_error train_existing_out_refused 2 "$RUN" -- "$BIN" train "$R" --out "$RUN" --quiet
[ "$(cat "$RUN"/* 2> /dev/null | cksum)" = "$sum_before" ] && ok train_existing_out_untouched ||
    bad train_existing_out_untouched "files in $RUN changed"

# ---- `longtail eval`: the checkpoint's transform, then overrides
tau_of() { sed -n 's/^post-hoc *tau_norm, tau \([0-9.e+-]*\) (\(.*\))$/\1|\2/p' "$T/out"; }
top1_of() { sed -n '/^test:/,/^$/s/.*top-1 \([0-9.]*\)%.*/\1/p' "$T/out" | head -1; }
ck_tau=$(grep -o '"posthoc_tau": *[0-9.e+-]*' "$RUN/metrics.json" | tail -1 | sed 's/.*: *//')
if run eval_checkpoint_posthoc 0 "$BIN" eval "$RUN/stage2.safetensors"; then
    got=$(tau_of)
    if [ -n "$ck_tau" ] && [ "${got%%|*}" != "" ] &&
        awk -v a="${got%%|*}" -v b="$ck_tau" 'BEGIN { exit !(a + 0 == b + 0) }' && [[ ${got#*|} == checkpoint\;* ]]; then
        ok eval_checkpoint_posthoc
    else bad eval_checkpoint_posthoc "post-hoc line '$got', metrics.json tau '$ck_tau'"; fi
    base_top1=$(top1_of)
fi
if run eval_posthoc_fixed_tau 0 "$BIN" eval "$RUN/stage2.safetensors" --posthoc taunorm --posthoc-tau 0.35; then
    got=$(tau_of)
    [ "$got" = "0.35|given" ] && ok eval_posthoc_fixed_tau || bad eval_posthoc_fixed_tau "post-hoc line '$got'"
fi
# sweeping again on the same validation set finds the checkpoint's tau and its accuracy
if run eval_posthoc_sweep 0 "$BIN" eval "$RUN/stage2.safetensors" --posthoc-tau sweep; then
    got=$(tau_of)
    if awk -v a="${got%%|*}" -v b="$ck_tau" 'BEGIN { exit !(a + 0 == b + 0) }' &&
        [ "${got#*|}" = "given, tau swept on validation" ] && [ "$(top1_of)" = "${base_top1:-x}" ]; then
        ok eval_posthoc_sweep
    else bad eval_posthoc_sweep "post-hoc line '$got', top-1 $(top1_of) vs ${base_top1:-?}, checkpoint tau '$ck_tau'"; fi
fi
# --posthoc none and --no-posthoc are the same raw model
if run eval_no_posthoc 0 "$BIN" eval "$RUN/stage2.safetensors" --no-posthoc --json; then
    grep -v '"posthoc_source"' "$T/out" > "$T/raw1"
    if run eval_posthoc_none 0 "$BIN" eval "$RUN/stage2.safetensors" --posthoc none --json; then
        grep -v '"posthoc_source"' "$T/out" > "$T/raw2"
        if cmp -s "$T/raw1" "$T/raw2" && grep -q '"posthoc": *"none"' "$T/raw1"; then ok eval_posthoc_none_is_raw
        else bad eval_posthoc_none_is_raw "the two JSON outputs differ or are not raw"; fi
    fi
fi
# --posthoc-bias alone keeps the recorded kind and tau: keep is the checkpoint's own
# evaluation, drop changes the logits
if run eval_bias_keep 0 "$BIN" eval "$RUN/stage2.safetensors" --json; then
    grep -v '"posthoc_source"' "$T/out" > "$T/ck"
    if run eval_bias_keep 0 "$BIN" eval "$RUN/stage2.safetensors" --posthoc-bias keep --json; then
        grep -v '"posthoc_source"' "$T/out" > "$T/keep"
        cmp -s "$T/ck" "$T/keep" && grep -q '"posthoc_source": "given"' "$T/out" && ok eval_bias_keep ||
            bad eval_bias_keep "--posthoc-bias keep differs from the checkpoint's evaluation"
        if run eval_bias_drop 0 "$BIN" eval "$RUN/stage2.safetensors" --posthoc-bias drop --json; then
            nll() { grep -m1 '"nll"' "$1"; }
            [ "$(nll "$T/out")" != "$(nll "$T/keep")" ] && ok eval_bias_drop ||
                bad eval_bias_drop "dropping the bias left the test NLL at $(nll "$T/out")"
        fi
    fi
fi
if run eval_logit_adjust 0 "$BIN" eval "$RUN/stage2.safetensors" --posthoc la_add --posthoc-tau 1 --json; then
    grep -q '"posthoc": *"la_additive"' "$T/out" && grep -Eq '"posthoc_tau": *1,?$' "$T/out" &&
        ok eval_logit_adjust || bad eval_logit_adjust "$(grep posthoc "$T/out" | head -3)"
fi

# checkpoints written before the models refactor (tests/fixtures/pre_models, the tiny
# recipe above) still load and score exactly as they did then
for st in 1 2; do
    if run eval_pre_models_stage$st 0 env ONEDNN_MAX_CPU_ISA=AVX2 "$BIN" eval "$FX/pre_models/stage$st.safetensors" \
        --set data.root="$D" --json; then
        if diff <(grep -v '"checkpoint"\|"recipe"' "$T/out") <(grep -v '"checkpoint"\|"recipe"' "$FX/pre_models/stage$st.eval.json") > "$T/diff"; then
            ok eval_pre_models_stage$st
        else bad eval_pre_models_stage$st "differs from the stored evaluation: $(head -c 300 "$T/diff")"; fi
    fi
done

# ---- models: architectures from the registry, several heads, a frozen teacher
M=$T/models.ini
cat > "$M" <<EOF
[data]
dataset = fmnist
root = $D
imbalance = 10
val_per_class = 4
[model]
arch = resnet8
[stage1]
epochs = 1
batch_size = 16
lr = 0.05
[eval]
groups = rank
batch_size = 64
[run]
threads = 1
EOF
# every architecture trains, checkpoints, and evaluates from the checkpoint file alone
# (copied away from its run directory: the architecture record and the recipe in its
# metadata are all there is) exactly as from the run directory
for spec in "mlp|mlp|model.arch=mlp model.hidden=64,32" "mlp_depth|mlp|model.arch=mlp model.depth=1 model.width=0.0625" \
    "resnet8_nobn|resnet8_nobn|model.arch=resnet8_nobn" "resnet18|resnet18|model.arch=resnet18 model.stem=cifar model.width=0.125" \
    "resnet50|resnet50|model.arch=resnet50 model.width=0.0625" "heads3|resnet8|model.heads=3 model.width=0.25"; do
    name=${spec%%|*}
    rest=${spec#*|}
    arch=${rest%%|*}
    sets=()
    for kv in ${rest#*|}; do sets+=(--set "$kv"); done
    if run "model_$name" 0 "$BIN" train "$M" "${sets[@]}" --out "$T/m_$name" --quiet &&
        run "model_$name" 0 "$BIN" eval "$T/m_$name/stage1.safetensors" --json; then
        grep -v '"checkpoint"\|"recipe"' "$T/out" > "$T/m_$name.eval"
        mkdir -p "$T/alone" && cp "$T/m_$name/stage1.safetensors" "$T/alone/$name.safetensors"
        if run "model_$name" 0 "$BIN" eval "$T/alone/$name.safetensors" --json &&
            diff <(grep -v '"checkpoint"\|"recipe"' "$T/out") "$T/m_$name.eval" > /dev/null &&
            run "model_$name" 0 "$BIN" eval "$T/alone/$name.safetensors" &&
            grep -q "^checkpoint .*($arch, " "$T/out" &&
            head -c 20000 "$T/alone/$name.safetensors" | grep -aq '"architecture"'; then
            ok "model_$name"
        else bad "model_$name" "evaluation from the file alone differs, or no architecture record: $(head -c 300 "$T/out")"; fi
    fi
done
# three heads over one backbone are named fc.0 .. fc.2 in the checkpoint
if head -c 20000 "$T/alone/heads3.safetensors" | grep -aq '"fc.2.weight"' &&
    ! head -c 20000 "$T/alone/heads3.safetensors" | grep -aq '"fc.weight"'; then ok model_heads3_names
else bad model_heads3_names "no fc.0 .. fc.2 tensors"; fi
# a torchvision ResNet's parameters carry torchvision's names
head -c 40000 "$T/alone/resnet18.safetensors" | grep -aq '"layer2.0.downsample.0.weight"' && ok model_resnet18_names ||
    bad model_resnet18_names "no layer2.0.downsample.0.weight"

# a frozen teacher (the two-stage run's stage1, a ResNet-8) distilled into an MLP
TEACH=$RUN/stage1.safetensors
cp "$TEACH" "$T/teacher_before"
if run model_teacher_kd 0 "$BIN" train "$M" --set model.arch=mlp --set model.hidden=32 --set model.teacher="$TEACH" \
    --set stage1.kd=0.5 --set stage1.kd_temperature=2 --out "$T/m_kd" --quiet; then
    if grep -q "teacher .*stage1.safetensors (resnet8, .*frozen)" "$T/out" && [ -s "$T/m_kd/stage1.safetensors" ] &&
        run model_teacher_kd 0 "$BIN" train "$M" --set model.arch=mlp --set model.hidden=32 --out "$T/m_nokd" --quiet &&
        ! cmp -s "$T/m_kd/stage1.safetensors" "$T/m_nokd/stage1.safetensors" &&
        run model_teacher_kd 0 "$BIN" eval "$T/m_kd/stage1.safetensors"; then
        ok model_teacher_kd
    else bad model_teacher_kd "no teacher line, no checkpoint, or the KD term changed nothing: $(head -c 300 "$T/out")"; fi
fi
cmp -s "$TEACH" "$T/teacher_before" && ok model_teacher_untouched || bad model_teacher_untouched "the teacher's file changed"

# the same teacher given as a role section: [model.teacher] checkpoint = PATH is
# model.teacher = PATH (the same tensors)
MT=$T/models_teacher.ini
{ cat "$M"; printf '[model.teacher]\ncheckpoint = %s\n' "$TEACH"; } > "$MT"
if run model_teacher_section 0 "$BIN" train "$MT" --set model.arch=mlp --set model.hidden=32 --set stage1.kd=0.5 \
    --set stage1.kd_temperature=2 --out "$T/m_kd2" --quiet; then
    [ "$(tensor_digest "$T/m_kd2/stage1.safetensors")" = "$(tensor_digest "$T/m_kd/stage1.safetensors")" ] &&
        ok model_teacher_section || bad model_teacher_section "not the tensors of model.teacher = PATH"
fi

# trained roles beside the student: [model.twin] (the student's architecture, its own
# initialization) and [model.small] (an MLP); each has its own checkpoint, metrics and log
# entries, and leaves the student exactly as it trains alone
MR=$T/models_roles.ini
{ cat "$M"; printf '[model.twin]\n[model.small]\narch = mlp\nhidden = 32\n'; } > "$MR"
sed -i 's/^epochs = 1$/epochs = 2/' "$MR"
run model_roles 0 "$BIN" train "$MR" --out "$T/m_roles" && cp "$T/out" "$T/m_roles.out"
if [ -s "$T/m_roles/stage1.twin.safetensors" ] && [ -s "$T/m_roles/stage1.small.safetensors" ]; then
    sed 's/^epochs = 1$/epochs = 2/' "$M" > "$T/models2.ini"
    if run model_roles_student 0 "$BIN" train "$T/models2.ini" --out "$T/m_alone2" --quiet &&
        [ "$(tensor_digest "$T/m_roles/stage1.safetensors")" = "$(tensor_digest "$T/m_alone2/stage1.safetensors")" ]; then
        ok model_roles_student_unchanged
    else bad model_roles_student_unchanged "the student differs from the same recipe without roles"; fi
    [ "$(tensor_digest "$T/m_roles/stage1.twin.safetensors")" != "$(tensor_digest "$T/m_roles/stage1.safetensors")" ] &&
        ok model_roles_own_init || bad model_roles_own_init "the twin has the student's tensors"
    if tr -d ' \n' < "$T/m_roles/metrics.json" | grep -q '"roles":{"twin":{"select":"best_val","selected_epoch":[12],' &&
        grep -q "^stage1 role small: epoch [12] selected (val top-1 [0-9.]*%); test top-1 [0-9.]*%" "$T/m_roles.out"; then
        tr -d ' \n' < "$T/m_roles/metrics.json" | grep -q '"small":{"select":"best_val".*"top1":' &&
            [ "$(grep -c '"roles":{"twin":{"loss":' "$T/m_roles/log.jsonl")" = 2 ] && ok model_roles_metrics ||
            bad model_roles_metrics "no role entries in metrics.json / log.jsonl: $(head -c 300 "$T/m_roles/log.jsonl")"
    else bad model_roles_metrics "metrics.json: $(tr -d ' \n' < "$T/m_roles/metrics.json" | head -c 400)"; fi
    cp "$T/m_roles/stage1.small.safetensors" "$T/alone/small.safetensors"
    if run model_roles_eval 0 "$BIN" eval "$T/alone/small.safetensors" && grep -q "^checkpoint .*(mlp, " "$T/out"; then
        ok model_roles_eval
    else bad model_roles_eval "the role's checkpoint does not evaluate alone: $(head -c 300 "$T/out")"; fi
    # killed after epoch 1 and resumed: every role ends with the same tensors
    if run model_roles_resume 0 "$BIN" train "$MR" --out "$T/m_roles_r" --quiet --stop-after-epochs 1 &&
        [ ! -e "$T/m_roles_r/stage1.twin.safetensors" ]; then
        if run model_roles_resume 0 "$BIN" train --resume --out "$T/m_roles_r" --quiet; then
            same=1
            for f in stage1 stage1.twin stage1.small; do
                [ "$(tensor_digest "$T/m_roles_r/$f.safetensors")" = "$(tensor_digest "$T/m_roles/$f.safetensors")" ] || same=0
            done
            [ $same = 1 ] && ok model_roles_resume || bad model_roles_resume "a resumed role differs from the uninterrupted run"
        fi
    fi
else bad model_roles "no stage1.twin / stage1.small checkpoint: $(tail -c 300 "$T/err")"; fi
expect_error model_role_student 2 "model.student" "[model]" -- \
    "$BIN" train "$MR" --set model.student.arch=mlp --out "$T/m_e9"
expect_error model_role_frozen_unused 2 "model.twin.checkpoint" "consults" -- \
    "$BIN" train "$MR" --set model.twin.checkpoint="$TEACH" --out "$T/m_e10"
expect_error model_role_head 2 "model.small.head" "classifier" -- \
    "$BIN" train "$MR" --set model.small.head=cosine --out "$T/m_e11"
expect_error model_role_bad_arch 2 "model.small.arch" "vgg11" -- \
    "$BIN" train "$MR" --set model.small.arch=vgg11 --out "$T/m_e12"
expect_error model_role_selector 2 "stage1.train" "role small" -- \
    "$BIN" train "$MR" --set stage1.train=layer3 --out "$T/m_e13"

# model.init from another run: strict by default; init_strict = false loads what matches
expect_error model_init_shape_mismatch 1 "model.init" "conv1.weight" "shape" -- \
    "$BIN" train "$M" --set model.width=0.5 --set model.init="$TEACH" --out "$T/m_init_bad" --quiet
if run model_init_not_strict 0 "$BIN" train "$M" --set model.heads=3 --set model.width=0.25 --set model.init="$TEACH" \
    --set model.init_strict=false --out "$T/m_init_ns" --quiet; then
    if grep -q "kept initialized: 6 missing (fc.0.weight, fc.0.bias, fc.1.weight" "$T/out" &&
        grep -q "ignored 2 the model lacks (fc.bias, fc.weight)" "$T/out"; then ok model_init_not_strict
    else bad model_init_not_strict "report: $(head -c 400 "$T/out")"; fi
fi

# bad model settings: one line naming the key
expect_error model_unknown_arch 2 "model.arch" "vgg11" "resnet18" -- "$BIN" train "$M" --set model.arch=vgg11 --out "$T/m_e1"
expect_error model_stem_needs_torchvision 2 "model.stem" -- "$BIN" train "$M" --set model.stem=cifar --out "$T/m_e2"
expect_error model_hidden_needs_mlp 2 "model.hidden" -- "$BIN" train "$M" --set model.hidden=64 --out "$T/m_e3"
expect_error model_bad_cifar_depth 2 "model.arch" "6n+2" -- "$BIN" train "$M" --set model.arch=resnet10 --out "$T/m_e4"
expect_error model_kd_needs_teacher 2 "stage1.kd" "teacher" -- "$BIN" train "$M" --set stage1.kd=0.5 --out "$T/m_e5"
expect_error model_teacher_unused 2 "model.teacher" "kd" -- \
    "$BIN" train "$M" --set model.teacher="$TEACH" --out "$T/m_e6"
expect_error model_heads_maxnorm 2 "stage2.maxnorm" "heads" -- "$BIN" train "$R" --set model.heads=3 --out "$T/m_e7"
expect_error model_teacher_missing 1 "model.teacher" "nope.safetensors" -- \
    "$BIN" train "$M" --set model.teacher="$T/nope.safetensors" --set stage1.kd=1 --out "$T/m_e8" --quiet
expect_error model_eval_other_arch 2 "resnet8" "mlp" -- "$BIN" eval "$T/alone/mlp.safetensors" --recipe "$M"

# ---- bad input: one line naming what and where, exit 2 (usage) or 1 (runtime)
expect_error eval_tau_without_transform 2 "stage1.safetensors" "--posthoc" -- \
    "$BIN" eval "$RUN/stage1.safetensors" --posthoc-tau 0.5
expect_error eval_bad_posthoc_kind 2 "--posthoc" "bogus" -- "$BIN" eval "$RUN/stage2.safetensors" --posthoc bogus
expect_error eval_bad_tau 2 "--posthoc-tau" "abc" -- "$BIN" eval "$RUN/stage2.safetensors" --posthoc-tau abc
expect_error eval_negative_tau 2 "--posthoc-tau" "-1" -- "$BIN" eval "$RUN/stage2.safetensors" --posthoc-tau -1
expect_error eval_no_posthoc_conflict 2 "--no-posthoc" -- \
    "$BIN" eval "$RUN/stage2.safetensors" --no-posthoc --posthoc taunorm
expect_error eval_l2norm_takes_no_tau 2 "l2norm" -- "$BIN" eval "$RUN/stage2.safetensors" --posthoc l2norm --posthoc-tau 1
expect_error eval_bias_with_logit_adjust 2 "--posthoc-bias" -- \
    "$BIN" eval "$RUN/stage2.safetensors" --posthoc la_add --posthoc-bias drop
expect_error eval_sweep_needs_val 2 "validation" -- \
    "$BIN" eval "$RUN/stage2.safetensors" --posthoc taunorm --set data.val_per_class=0
head -c 3000 "$RUN/stage2.safetensors" > "$T/truncated.safetensors"
expect_error eval_truncated_checkpoint 1 "truncated.safetensors" -- "$BIN" eval "$T/truncated.safetensors" --recipe "$R"
printf 'not a checkpoint at all' > "$T/garbage.safetensors"
expect_error eval_garbage_checkpoint 1 "garbage.safetensors" -- "$BIN" eval "$T/garbage.safetensors" --recipe "$R"
expect_error eval_missing_checkpoint 1 "nope.safetensors" -- "$BIN" eval "$T/nope.safetensors" --recipe "$R"
expect_error eval_unknown_option 2 "--frobnicate" -- "$BIN" eval "$RUN/stage2.safetensors" --frobnicate

expect_error train_unknown_key 2 "stage1.bogus" -- "$BIN" train "$R" --set stage1.bogus=1 --out "$T/r_unknown"
[ ! -e "$T/r_unknown" ] && ok train_unknown_key_writes_nothing || bad train_unknown_key_writes_nothing "$T/r_unknown exists"
printf '[data]\nimbalance = 10\n[model]\narch = resnet8\ncolour = blue\n[stage1]\nepochs = 1\n' > "$T/badkey.ini"
expect_error train_unknown_key_in_file 2 "badkey.ini" "colour" -- "$BIN" train "$T/badkey.ini" --out "$T/r_badkey"
expect_error train_bad_number 2 "stage1.lr" "fast" -- "$BIN" train "$R" --set stage1.lr=fast --out "$T/r_badnum"
expect_error train_missing_data 1 "$T/nodata" -- "$BIN" train "$R" --set data.root="$T/nodata" --out "$T/r_nodata"
[ ! -e "$T/r_nodata/stage1.safetensors" ] && ok train_missing_data_writes_no_checkpoint ||
    bad train_missing_data_writes_no_checkpoint "a checkpoint was written"
cp -r "$D" "$T/corrupt"
head -c 5000 "$D/train-images-idx3-ubyte" > "$T/corrupt/train-images-idx3-ubyte"
expect_error train_truncated_images 1 "train-images-idx3-ubyte" -- \
    "$BIN" train "$R" --set data.root="$T/corrupt" --out "$T/r_corrupt"
expect_error train_missing_recipe 1 "no-such.ini" -- "$BIN" train "$T/no-such.ini" --out "$T/r_norecipe"
expect_error unknown_command 2 "frob" -- "$BIN" frob
expect_error data_bad_imbalance 2 "--imbalance" -- "$BIN" data --root "$D" --imbalance zero

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# Train the shipped `igsm-small` on CPU: a three-stage curriculum on iGSM `tiny` (op <= 3), one thread each.
#
#   bash scripts/train_igsm_small.sh [RUNS_DIR]        # default runs/igsm_small; about 2 h 35 min on one core
#
# Why a curriculum (docs/part2_analyses.md, "Why it plateaus"): trained on op <= 3 with the loss on the solution
# only, a 4-layer model copies *some* stated number and plateaus near 20%. The name-keyed lookup (a layer-2 head
# that attends from `so a =` to the number stated for `a`) forms when every solution is a single lookup (op = 1)
# and the problem text is in the loss too. Stage 2 and 3 then continue that model on op <= 3. Stage 3 names the
# letters a, b, c, ... (`task.letter_order=sequential`): with the paper's random fresh letters the model never
# learned to avoid a used one, and reusing a letter was the first error of almost every op >= 2 solution.
# Each stage is an ordinary `plm-interp train` run; `--resume` continues an interrupted stage.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-runs/igsm_small}"
PLM="${PLM_VENV:-.venv}/bin/plm-interp"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
MODEL=(--set model.n_layers=4 --set model.n_heads=4 --set model.d_model=128 --set model.n_ctx=192
       --set model.positional=rot)
# The shipped models saw the first release's generator and its 1,499 apostrophe-free names (task.generator=v1,
# task.names=parseable); these two settings reproduce them. Drop both to train on the authors' distribution.
COMMON=(--set task.preset=tiny --set task.generator=v1 --set task.names=parseable --set train.batch_size=32 --set train.keep_checkpoints=20 --set train.log_every=50
        --set train.progress=false)

stage() {  # NAME ARGS...: run a stage unless its final/ exists; resume it if it was interrupted
  local dir="$RUNS/$1"; shift
  if [[ -f "$dir/final/model.safetensors" ]]; then echo "[igsm-small] $dir done"; return; fi
  local resume=(); [[ -d "$dir/checkpoints" ]] && resume=(--resume)
  "$PLM" train igsm "${COMMON[@]}" "$@" --run-dir "$dir" "${resume[@]}"
}

# 1. op = 1 only, loss on all tokens: the lookup head forms between steps 2500 and 3750 (24.6M tokens)
stage 1_op1 "${MODEL[@]}" --set task.op=1 --set task.loss_on=all --set train.max_steps=4000 --set train.lr=2e-3 \
  --set train.warmup_steps=200 --set train.schedule=constant
# 2. op <= 3, loss on all tokens, constant lr 1e-3
stage 2_tiny --set train.init_from="$RUNS/1_op1/final" --set task.loss_on=all --set train.max_steps=1250 \
  --set train.lr=1e-3 --set train.warmup_steps=200 --set train.schedule=constant
# 3. op <= 3, loss on the solution, sequential letters (a, b, c, ...), lr 1e-3 decayed (cosine) to 1e-4
stage 3_tiny_solution --set train.init_from="$RUNS/2_tiny/final" --set task.loss_on=solution \
  --set task.letter_order=sequential --set train.max_steps=5000 --set train.lr=1e-3 --set train.warmup_steps=50 \
  --set train.schedule=cosine --set train.ckpt_every=500
echo "[igsm-small] model: $RUNS/3_tiny_solution/final"
# 4. (igsm-small-retry) stage 3's model continued on Part 2.2 retry data: before each solution sentence, with
#    probability 0.5 (again with 0.5^2, ...), "Define <a parameter that cannot be computed yet> as [BACK].", the
#    wrong name left out of the loss (task.mask_retry). Predicting [BACK] after "Define A as" makes the model
#    compute whether A is ready; unmasked, it also learned to write wrong names (docs/part2_analyses.md)
#    task.retry_rule=v1: the wrong-parameter rule this model was trained on (tasks/igsm/retry.py; it may repeat a
#    retracted name); the default is now the paper's rule.
stage 4_retry --set train.init_from="$RUNS/3_tiny_solution/final" --set task.loss_on=solution \
  --set task.letter_order=sequential --set task.retry=perfect --set task.retry_rule=v1 --set task.retry_p=0.5 --set task.mask_retry=true \
  --set train.max_steps=1500 --set train.lr=1e-3 --set train.warmup_steps=50 --set train.schedule=cosine \
  --set train.ckpt_every=500
echo "[igsm-small] retry model: $RUNS/4_retry/final"

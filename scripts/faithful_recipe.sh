#!/usr/bin/env bash
# ReBalance-HCA's own recipe, faithfully, beside this project's default, on SynthVG on a CPU, PredCls
# (docs/training.md#rebalance-hcas-own-recipe). RB's recipe is three runs:
#   1. a plain cross-entropy HCA model and its predicate confusion matrix: the quickstart's hca_stage1 and its
#      matrix (scripts/quickstart.sh runs first; it reuses what exists);
#   2. stage 1 trained with RB's PredicateReweighting loss and that matrix (OUTPUT_ROOT/hca_rb_stage1);
#   3. stage 2 from it: the clean classifier with the reweighting loss and the same matrix, tested with the
#      transfer classifier (OUTPUT_ROOT/hca_rb_stage2).
# Ends with one table of both recipes (compare_runs --columns full; the training time of a stage-2 row adds up
# every run its model needed). Every step reuses its output when it exists.
# Extra KEY VALUE arguments override the relation configs of every run (the quickstart's too).
#   Environment: SYNTHVG_DIR (datasets/synthvg), SYNTHVG_IMAGES (4000), OUTPUT_ROOT (output/quickstart), MARKDOWN
#   (set: the final table in Markdown); SynthVG's VG150 layout only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_synthvg_runs.sh"
CE_MATRIX="$OUT/hca_stage1/predicate_confusion_matrix.npy"

step "1/3 the quickstart: SynthVG, detector, the plain-CE HCA model (hca_stage1) and its confusion matrix"
bash scripts/quickstart.sh "$@"

step "2/3 RB's stage 1: HCA trained with the predicate-reweighting loss and the plain-CE model's confusion matrix"
relation_tool relation_train_net.py HCA MODEL.ROI_RELATION_HEAD.LOSS.TYPE PredicateReweighting \
  MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX "$CE_MATRIX" OUTPUT_DIR "$OUT/hca_rb_stage1" "$@"

step "3/3 RB's stage 2: informative finetuning from RB's stage 1, with the same confusion matrix"
stage2 HCA hca_rb_stage1 "$CE_MATRIX" hca_rb_stage2 "$@"

echo
echo "== both ReBalance-HCA recipes, SynthVG test split, PredCls ($((SECONDS - SECONDS_AT_START)) s in all)"
"$PY" tools/compare_runs.py --columns full ${MARKDOWN:+--markdown} \
  "HCA stage 1, plain CE=$OUT/hca_stage1" \
  "default recipe, stage 2=$OUT/hca_stage2" \
  "RB's recipe, stage 1=$OUT/hca_rb_stage1" \
  "RB's recipe, stage 2=$OUT/hca_rb_stage2" \
  --trained-in "default recipe, stage 2=$OUT/hca_stage1,$OUT/hca_stage2" \
  --trained-in "RB's recipe, stage 1=$OUT/hca_stage1,$OUT/hca_rb_stage1" \
  --trained-in "RB's recipe, stage 2=$OUT/hca_stage1,$OUT/hca_rb_stage1,$OUT/hca_rb_stage2"

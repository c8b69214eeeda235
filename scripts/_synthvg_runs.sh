#!/usr/bin/env bash
# Sourced by faithful_recipe.sh and benchmark_table.sh: the quickstart's SynthVG (VG150 layout) folders and the
# relation runs on its detector, PredCls. Every run of these helpers reuses its output when it exists, as the
# quickstart's steps do. Sets $PY, $SYNTHVG_DIR, $OUT (exported as OUTPUT_ROOT for scripts/quickstart.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
if [ "${DATASET:-vg150}" != vg150 ]; then
  echo "$(basename "$0") runs on SynthVG's VG150 layout only (DATASET vg150), got DATASET '$DATASET'" >&2
  exit 2
fi
export DATASET=vg150 SYNTHVG_DIR=${SYNTHVG_DIR:-datasets/synthvg} OUTPUT_ROOT=${OUTPUT_ROOT:-output/quickstart}
OUT=$OUTPUT_ROOT
SECONDS_AT_START=$SECONDS
step() { echo; echo "== $1 ($((SECONDS - SECONDS_AT_START)) s so far)"; }

# relation_tool TOOL CONTEXT KEY VALUE...: tools/TOOL on configs/synthetic/relation_<CONTEXT>_R18_FPN.yaml over
# the quickstart's SynthVG and detector (KEY VALUE pairs last, so that they win).
relation_tool() {
  local tool=$1 context=$2
  shift 2
  "$PY" "tools/$tool" --config-file "configs/synthetic/relation_${context}_R18_FPN.yaml" \
    DATASETS.DATA_DIR "$SYNTHVG_DIR" GLOVE_DIR "$SYNTHVG_DIR/vg" \
    MODEL.PRETRAINED_DETECTOR_CKPT "$OUT/detector/model_final.pth" TEST.ALLOW_LOAD_FROM_CACHE True "$@"
}

# confusion_matrix CONTEXT RUN KEY VALUE...: the predicate confusion matrix of $OUT/RUN's model over the train
# split, in $OUT/RUN/predicate_confusion_matrix.npy (skipped when that file exists).
confusion_matrix() {
  local context=$1 run=$2
  shift 2
  if [ -f "$OUT/$run/predicate_confusion_matrix.npy" ]; then
    echo "already in $OUT/$run/predicate_confusion_matrix.npy"
    return
  fi
  relation_tool compute_confusion_matrix.py "$context" OUTPUT_DIR "$OUT/$run" \
    MODEL.WEIGHT "$OUT/$run/model_final.pth" "$@"
}

# stage2 CONTEXT STAGE1_RUN CONFUSION_MATRIX RUN KEY VALUE...: the recipe's stage 2 (clean classifier trained
# with the reweighting loss and CONFUSION_MATRIX, tested with the transfer classifier), as the quickstart's.
stage2() {
  local context=$1 stage1=$2 confusion=$3 run=$4
  shift 4
  relation_tool relation_train_net.py "$context" MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER True \
    MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER True MODEL.PRETRAINED_MODEL_CKPT "$OUT/$stage1/model_final.pth" \
    MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX "$confusion" MODEL.ROI_RELATION_HEAD.LOSS.TYPE PredicateReweighting \
    SOLVER.MAX_ITER 200 SOLVER.VAL_PERIOD 200 OUTPUT_DIR "$OUT/$run" "$@"
}

#!/usr/bin/env bash
# The whole ReBalance-HCA recipe on SynthVG on a CPU, PredCls: data -> detector -> HCA stage 1 -> confusion
# matrix -> HCA stage 2 (with the transfer classifier) -> test, plus the two baselines the table compares
# (the frequency-only predictor and SGB's Transformer context). Ends with one table of R@K, mR@K and F@50
# (with DATASET=oiv6: SynthVG's scenes in the Open Images V6 layout, and PySGG's OI metrics; with
# DATASET=gqa200: the same scenes in SHA-GCL's GQA-200 layout, the VG metrics, validation on mR@100).
# Every step reuses its output when it exists (a rerun only prints the table again).
# Creates or reuses .venv first. Extra KEY VALUE arguments override the relation configs.
#   Environment: DATASET (vg150 | oiv6 | gqa200), SYNTHVG_DIR (datasets/synthvg | datasets/synthvg_oi |
#   datasets/synthvg_gqa), SYNTHVG_IMAGES (4000), OUTPUT_ROOT (output/quickstart | output/quickstart_oiv6 |
#   output/quickstart_gqa200)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
DATASET=${DATASET:-vg150}
case "$DATASET" in
  vg150)
    SYNTHVG_DIR=${SYNTHVG_DIR:-datasets/synthvg}
    OUT=${OUTPUT_ROOT:-output/quickstart}
    DATASET_FILES="$SYNTHVG_DIR/vg"
    DATASET_MARKER="$DATASET_FILES/VG-SGG-with-attri.h5"
    CONFIG_SUFFIX="" ;;
  oiv6)
    SYNTHVG_DIR=${SYNTHVG_DIR:-datasets/synthvg_oi}
    OUT=${OUTPUT_ROOT:-output/quickstart_oiv6}
    DATASET_FILES="$SYNTHVG_DIR/openimages/open_image_v6"
    DATASET_MARKER="$DATASET_FILES/annotations/vrd-train-anno.json"
    CONFIG_SUFFIX="_oiv6" ;;
  gqa200)
    SYNTHVG_DIR=${SYNTHVG_DIR:-datasets/synthvg_gqa}
    OUT=${OUTPUT_ROOT:-output/quickstart_gqa200}
    DATASET_FILES="$SYNTHVG_DIR/gqa"
    DATASET_MARKER="$DATASET_FILES/GQA_200_Train.json"
    CONFIG_SUFFIX="_gqa200" ;;
  *) echo "DATASET must be vg150, oiv6 or gqa200, got '$DATASET'" >&2; exit 2 ;;
esac
DETECTOR_CONFIG=configs/synthetic/detector_R18_FPN$CONFIG_SUFFIX.yaml
CONFIG=configs/synthetic/relation_HCA_R18_FPN$CONFIG_SUFFIX.yaml
DATA=(DATASETS.DATA_DIR "$SYNTHVG_DIR" GLOVE_DIR "$DATASET_FILES")
RELATION=(--config-file "$CONFIG" "${DATA[@]}" MODEL.PRETRAINED_DETECTOR_CKPT "$OUT/detector/model_final.pth"
          TEST.ALLOW_LOAD_FROM_CACHE True)
STAGE2=(MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER True MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER True
        MODEL.PRETRAINED_MODEL_CKPT "$OUT/hca_stage1/model_final.pth"
        MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX "$OUT/hca_stage1/predicate_confusion_matrix.npy")
started=$SECONDS
step() { echo; echo "== $1 ($((SECONDS - started)) s so far)"; }

step "1/8 SynthVG"
if [ ! -f "$DATASET_MARKER" ]; then
  "$PY" tools/make_synthetic_vg.py --output-dir "$SYNTHVG_DIR" --num-images "${SYNTHVG_IMAGES:-4000}" \
    --format "$DATASET"
else
  echo "already in $SYNTHVG_DIR"
fi

step "2/8 checking the dataset as relation training will read it"
"$PY" tools/check_dataset.py --config-file "$CONFIG" "${DATA[@]}" OUTPUT_DIR "$OUT/check"

step "3/8 pretraining the R-18-FPN detector (400 iterations; its mAP: docs/detector.md)"
if [ ! -f "$OUT/detector/model_final.pth" ]; then
  "$PY" tools/detector_pretrain_net.py --config-file "$DETECTOR_CONFIG" "${DATA[@]}" \
    OUTPUT_DIR "$OUT/detector" SOLVER.MAX_ITER 400 SOLVER.STEPS "(300, 370)" SOLVER.TO_VAL False \
    DATALOADER.NUM_WORKERS 0 --skip-test
else
  echo "already in $OUT/detector"
fi

step "4/8 HCA stage 1: the common model"
"$PY" tools/relation_train_net.py "${RELATION[@]}" OUTPUT_DIR "$OUT/hca_stage1" "$@"

step "5/8 the predicate confusion matrix of the stage-1 model over the train split"
if [ ! -f "$OUT/hca_stage1/predicate_confusion_matrix.npy" ]; then
  "$PY" tools/compute_confusion_matrix.py "${RELATION[@]}" OUTPUT_DIR "$OUT/hca_stage1" \
    MODEL.WEIGHT "$OUT/hca_stage1/model_final.pth" "$@"
else
  echo "already in $OUT/hca_stage1/predicate_confusion_matrix.npy"
fi

step "6/8 HCA stage 2: informative finetuning of the clean classifier, tested with the transfer classifier"
"$PY" tools/relation_train_net.py "${RELATION[@]}" "${STAGE2[@]}" SOLVER.MAX_ITER 200 SOLVER.VAL_PERIOD 200 \
  OUTPUT_DIR "$OUT/hca_stage2" "$@"

step "7/8 baseline: SGB's Transformer context (self-attention only), otherwise as HCA stage 1"
"$PY" tools/relation_train_net.py "${RELATION[@]}" MODEL.ROI_RELATION_HEAD.PREDICTOR TransformerPredictor \
  OUTPUT_DIR "$OUT/transformer_stage1" "$@"

step "8/8 baseline: the most frequent predicate per class pair (no training)"
"$PY" tools/relation_test_net.py "${RELATION[@]}" MODEL.ROI_RELATION_HEAD.PREDICTOR FrequencyBaselinePredictor \
  OUTPUT_DIR "$OUT/frequency" "$@"

echo
echo "== SynthVG ($DATASET layout) test split, PredCls ($((SECONDS - started)) s in all)"
"$PY" tools/compare_runs.py "frequency baseline=$OUT/frequency" "Transformer stage 1=$OUT/transformer_stage1" \
  "HCA stage 1=$OUT/hca_stage1" "HCA stage 2 + transfer=$OUT/hca_stage2"

#!/usr/bin/env bash
# Relation testing: SGB's report, the results JSON, the per-predicate recall chart and the predictions file.
#   bash scripts/test.sh predcls 2 MODEL.WEIGHT <model_final.pth> MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX <npy>
# Arguments: MODE (predcls | sgcls | sgdet), STAGE (1 | 2: stage 2 tests the clean classifier with the
# transfer classifier), then KEY VALUE overrides. Environment as scripts/train.sh (OUTPUT_DIR defaults to
# the training run's folder, whose last checkpoint is tested when MODEL.WEIGHT is not given).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/_launch.sh"
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/test.sh predcls|sgcls|sgdet 1|2 [KEY VALUE ...]" >&2
  exit 2
fi
MODE=$1 STAGE=$2
shift 2
MODE_OPTS=$(mode_overrides "$MODE")
case "$STAGE" in
  1) STAGE_OPTS="MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER False MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER False" ;;
  2) STAGE_OPTS="MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER True MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER True" ;;
  *) echo "STAGE must be 1 or 2, got '$STAGE'" >&2; exit 2 ;;
esac
CONFIG=${CONFIG:-configs/vg150/e2e_relation_X_101_32_8_FPN_1x_hca.yaml}
OUTPUT_DIR=${OUTPUT_DIR:-./checkpoints/hca_${MODE}_stage${STAGE}}
# shellcheck disable=SC2086
launch tools/relation_test_net.py --config-file "$CONFIG" $MODE_OPTS $STAGE_OPTS OUTPUT_DIR "$OUTPUT_DIR" "$@"

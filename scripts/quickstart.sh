#!/usr/bin/env bash
# The main job on the embedded default, SynthVG, on a CPU: generate the dataset (once), check it as training
# will read it, pretrain the small detector and report its mAP@0.5 on SynthVG test.
# Creates or reuses .venv first. Extra KEY VALUE arguments override the detector config.
#   Environment: SYNTHVG_DIR (datasets/synthvg), SYNTHVG_IMAGES (4000), OUTPUT_DIR (output/quickstart_detector)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
SYNTHVG_DIR=${SYNTHVG_DIR:-datasets/synthvg}
OUTPUT_DIR=${OUTPUT_DIR:-output/quickstart_detector}
CONFIG=configs/synthetic/detector_R18_FPN.yaml

if [ ! -f "$SYNTHVG_DIR/vg/VG-SGG-with-attri.h5" ]; then
  echo "== 1/3 generating SynthVG in $SYNTHVG_DIR"
  "$PY" tools/make_synthetic_vg.py --output-dir "$SYNTHVG_DIR" --num-images "${SYNTHVG_IMAGES:-4000}"
else
  echo "== 1/3 SynthVG already in $SYNTHVG_DIR"
fi

echo "== 2/3 checking the dataset (splits, statistics, samples)"
"$PY" tools/check_dataset.py --config-file "$CONFIG" DATASETS.DATA_DIR "$SYNTHVG_DIR" MODEL.RELATION_ON True \
  OUTPUT_DIR "$OUTPUT_DIR"

echo "== 3/3 pretraining the R-18-FPN detector on the CPU, then testing it"
"$PY" tools/detector_pretrain_net.py --config-file "$CONFIG" DATASETS.DATA_DIR "$SYNTHVG_DIR" \
  OUTPUT_DIR "$OUTPUT_DIR" "$@"

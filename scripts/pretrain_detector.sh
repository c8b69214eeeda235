#!/usr/bin/env bash
# Detector pretraining on VG150 with SGB's published settings (docs/reference.md#detector-pretraining),
# one process per GPU.
#   NGPUS=4 bash scripts/pretrain_detector.sh                        # SGB's run: 4 GPUs, 8 images per batch
#   NGPUS=1 bash scripts/pretrain_detector.sh SOLVER.IMS_PER_BATCH 2 # extra KEY VALUE pairs override the ones below
# Environment: NGPUS (1), MASTER_PORT (10001), CONFIG, OUTPUT_DIR (./checkpoints/pretrained_faster_rcnn).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TORCHRUN=${TORCHRUN:-$ROOT/.venv/bin/torchrun}
CONFIG=${CONFIG:-configs/vg150/e2e_relation_detector_X_101_32_8_FPN_1x.yaml}
OUTPUT_DIR=${OUTPUT_DIR:-./checkpoints/pretrained_faster_rcnn}
exec "$TORCHRUN" --nproc_per_node="${NGPUS:-1}" --master_port="${MASTER_PORT:-10001}" \
  tools/detector_pretrain_net.py --config-file "$CONFIG" \
  SOLVER.IMS_PER_BATCH 8 TEST.IMS_PER_BATCH 4 DTYPE "float16" SOLVER.MAX_ITER 50000 \
  SOLVER.STEPS "(30000, 45000)" SOLVER.VAL_PERIOD 2000 SOLVER.CHECKPOINT_PERIOD 2000 \
  MODEL.RELATION_ON False OUTPUT_DIR "$OUTPUT_DIR" SOLVER.PRE_VAL False "$@"

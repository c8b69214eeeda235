#!/usr/bin/env bash
# Detector pretraining on VG150 with SGB's published settings (docs/reference.md#detector-pretraining), one process per GPU.
#   NUM_GPUS=4 bash scripts/pretrain_detector.sh                        # SGB's run: 4 GPUs, 8 images per batch
#   NUM_GPUS=1 bash scripts/pretrain_detector.sh SOLVER.IMS_PER_BATCH 2 # extra KEY VALUE pairs override the ones below
# Environment: CONFIG, OUTPUT_DIR (./checkpoints/pretrained_faster_rcnn), and the launch variables of
# scripts/_launch.sh, as in train.sh: NUM_GPUS (all visible GPUs, else 1 CPU process; NGPUS, its old name
# here, still works), NNODES, RDZV_ENDPOINT, RDZV_ID, NODE_RANK, MASTER_ADDR, MASTER_PORT, MAX_RESTARTS,
# RDZV_TIMEOUT, PYTHON_BIN, TORCHRUN.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/_launch.sh"
cd "$ROOT"
CONFIG=${CONFIG:-configs/vg150/e2e_relation_detector_X_101_32_8_FPN_1x.yaml}
OUTPUT_DIR=${OUTPUT_DIR:-./checkpoints/pretrained_faster_rcnn}
launch_setup
exec "${LAUNCHER[@]}" tools/detector_pretrain_net.py --config-file "$CONFIG" \
  SOLVER.IMS_PER_BATCH 8 TEST.IMS_PER_BATCH 4 DTYPE "float16" SOLVER.MAX_ITER 50000 \
  SOLVER.STEPS "(30000, 45000)" SOLVER.VAL_PERIOD 2000 SOLVER.CHECKPOINT_PERIOD 2000 \
  MODEL.RELATION_ON False "${DEVICE_OPTS[@]}" OUTPUT_DIR "$OUTPUT_DIR" SOLVER.PRE_VAL False "$@"

#!/usr/bin/env bash
# Relation training, one process per GPU (else one CPU process), ReBalance-HCA's two stages.
#   bash scripts/train.sh predcls 1                      # stage 1: the common model
#   bash scripts/train.sh predcls 2 MODEL.PRETRAINED_MODEL_CKPT <stage-1 model_final.pth> \
#        MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX <confusion.npy>   # stage 2: informative finetuning
#   NNODES=2 RDZV_ENDPOINT=node1:29500 RDZV_ID=42 NUM_GPUS=4 MAX_RESTARTS=3 bash scripts/train.sh predcls 1
#        # the same command on each of two machines: 8 processes, restarted up to 3 times from the last checkpoint
# Arguments: MODE (predcls | sgcls | sgdet), STAGE (1 | 2), then KEY VALUE overrides passed to the tool.
# Environment: CONFIG (configs/vg150/e2e_relation_X_101_32_8_FPN_1x_hca.yaml), OUTPUT_DIR
# (./checkpoints/hca_<mode>_stage<stage>; on several machines a folder that all of them see), and the launch
# variables of scripts/_launch.sh: NUM_GPUS (all visible GPUs, else 1 CPU process), NNODES, RDZV_ENDPOINT,
# RDZV_ID, NODE_RANK, MASTER_ADDR, MASTER_PORT, MAX_RESTARTS, RDZV_TIMEOUT, PYTHON_BIN, TORCHRUN.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/_launch.sh"
relation_tool relation_train_net.py train.sh "$@"

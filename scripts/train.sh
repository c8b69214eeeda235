#!/usr/bin/env bash
# Relation training, one process per GPU (else one CPU process), ReBalance-HCA's two stages.
#   bash scripts/train.sh predcls 1                      # stage 1: the common model
#   bash scripts/train.sh predcls 2 MODEL.PRETRAINED_MODEL_CKPT <stage-1 model_final.pth> \
#        MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX <confusion.npy>   # stage 2: informative finetuning
# Arguments: MODE (predcls | sgcls | sgdet), STAGE (1 | 2), then KEY VALUE overrides passed to the tool.
# Environment: NUM_GPUS (all visible GPUs, else 1 CPU process), MASTER_PORT (10025), CONFIG
# (configs/vg150/e2e_relation_X_101_32_8_FPN_1x_hca.yaml), OUTPUT_DIR (./checkpoints/hca_<mode>_stage<stage>),
# PYTHON_BIN / TORCHRUN (the project's .venv).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/_launch.sh"
relation_tool relation_train_net.py train.sh "$@"

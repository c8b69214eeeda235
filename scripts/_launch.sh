#!/usr/bin/env bash
# Sourced by train.sh / test.sh: relation_tool TOOL DEFAULT_CONFIG MODE STAGE [KEY VALUE ...] runs
# tools/TOOL through torchrun with NUM_GPUS processes (default: every visible GPU, else one CPU process with
# MODEL.DEVICE cpu), the mode's and the stage's keys, OUTPUT_DIR, and the caller's overrides last.
mode_overrides() {
  case "$1" in
    predcls) echo "MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL True" ;;
    sgcls) echo "MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False" ;;
    sgdet) echo "MODEL.ROI_RELATION_HEAD.USE_GT_BOX False MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False" ;;
    *) echo "MODE must be predcls, sgcls or sgdet, got '$1'" >&2; return 2 ;;
  esac
}

stage_overrides() {
  case "$1" in
    1) echo "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER False MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER False" ;;
    2) echo "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER True MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER True" ;;
    *) echo "STAGE must be 1 or 2, got '$1'" >&2; return 2 ;;
  esac
}

relation_tool() {
  local tool=$1 script=$2
  shift 2
  if [ $# -lt 2 ]; then
    echo "usage: bash scripts/$script predcls|sgcls|sgdet 1|2 [KEY VALUE ...]" >&2
    exit 2
  fi
  local mode=$1 stage=$2 mode_opts stage_opts
  shift 2
  mode_opts=$(mode_overrides "$mode")
  stage_opts=$(stage_overrides "$stage")
  cd "$ROOT"
  local config=${CONFIG:-configs/vg150/e2e_relation_X_101_32_8_FPN_1x_hca.yaml}
  local output_dir=${OUTPUT_DIR:-./checkpoints/hca_${mode}_stage${stage}}
  local python_bin=${PYTHON_BIN:-$ROOT/.venv/bin/python}
  local torchrun=${TORCHRUN:-$ROOT/.venv/bin/torchrun}
  local gpus device_opts=()
  gpus=${NUM_GPUS:-$("$python_bin" -c 'import torch; print(torch.cuda.device_count())')}
  if [ "$gpus" -lt 1 ]; then
    gpus=1
    device_opts=(MODEL.DEVICE cpu)
  fi
  # shellcheck disable=SC2086
  exec "$torchrun" --nproc_per_node="$gpus" --master_port="${MASTER_PORT:-10025}" "tools/$tool" \
    --config-file "$config" $mode_opts $stage_opts "${device_opts[@]}" OUTPUT_DIR "$output_dir" "$@"
}

#!/usr/bin/env bash
# Sourced by train.sh / test.sh: mode_overrides MODE, and launch TOOL ARGS... through torchrun with
# NUM_GPUS processes (default: every visible GPU, else one CPU process with MODEL.DEVICE cpu).
mode_overrides() {
  case "$1" in
    predcls) echo "MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL True" ;;
    sgcls) echo "MODEL.ROI_RELATION_HEAD.USE_GT_BOX True MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False" ;;
    sgdet) echo "MODEL.ROI_RELATION_HEAD.USE_GT_BOX False MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False" ;;
    *) echo "MODE must be predcls, sgcls or sgdet, got '$1'" >&2; return 2 ;;
  esac
}

launch() {
  cd "$ROOT"
  local python_bin=${PYTHON_BIN:-$ROOT/.venv/bin/python}
  local torchrun=${TORCHRUN:-$ROOT/.venv/bin/torchrun}
  local gpus
  gpus=${NUM_GPUS:-$("$python_bin" -c 'import torch; print(torch.cuda.device_count())')}
  if [ "$gpus" -ge 1 ]; then
    exec "$torchrun" --nproc_per_node="$gpus" --master_port="${MASTER_PORT:-10025}" "$@"
  fi
  exec "$torchrun" --nproc_per_node=1 --master_port="${MASTER_PORT:-10025}" "$@" MODEL.DEVICE cpu
}

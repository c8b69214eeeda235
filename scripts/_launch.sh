#!/usr/bin/env bash
# Sourced by train.sh, test.sh and pretrain_detector.sh (ROOT set): how a tool is launched, on one machine or
# several, through torchrun (python -m rebalance_hca.engine.torchrun: torchrun with one-line rendezvous errors).
# Environment, the same for every script (docs/training.md#several-machines):
#   NUM_GPUS       processes per machine (default: every visible GPU, else 1 CPU process with MODEL.DEVICE cpu)
#   NNODES         machines (1); with RDZV_ENDPOINT also MIN:MAX, an elastic range
#   RDZV_ENDPOINT  HOST[:PORT] of a c10d rendezvous, the same on every machine (usually the first machine)
#   RDZV_ID        the job's id at that endpoint, the same on every machine (rebalance_hca)
#   NODE_RANK, MASTER_ADDR, MASTER_PORT   the static rendezvous instead of RDZV_ENDPOINT: this machine's rank
#                  (0) and machine 0's address and port (29500). One machine with neither: a free local port.
#   MAX_RESTARTS   times torchrun restarts the workers of a failed run, which then resume from the last
#                  checkpoint (0)
#   RDZV_TIMEOUT   seconds the machines wait for each other at the start (600)
#   PYTHON_BIN     the Python of the project's venv; TORCHRUN: another torchrun-compatible launcher
#   NGPUS          the old name of NUM_GPUS (pretrain_detector.sh), still read
# The collective timeout is the config key DIST_TIMEOUT (seconds): pass DIST_TIMEOUT 600 among the KEY VALUE pairs.

# launch_setup: sets PYTHON_BIN, LAUNCHER (the launcher command and its torchrun arguments, the tool script
# to follow) and DEVICE_OPTS (MODEL.DEVICE cpu when the machine has no GPU). Returns 2 on a bad setting.
launch_setup() {
  PYTHON_BIN=${PYTHON_BIN:-${REBALANCE_HCA_VENV:-$ROOT/.venv}/bin/python}
  if [ -n "${NGPUS:-}" ] && [ -z "${NUM_GPUS:-}" ]; then
    echo "NGPUS is deprecated: use NUM_GPUS (processes per machine, the same name in every script)" >&2
    NUM_GPUS=$NGPUS
  fi
  local processes nnodes=${NNODES:-1}
  processes=${NUM_GPUS:-$("$PYTHON_BIN" -c 'import torch; print(torch.cuda.device_count())')}
  DEVICE_OPTS=()
  if [ "$processes" -lt 1 ]; then
    processes=1
    DEVICE_OPTS=(MODEL.DEVICE cpu)
  fi
  if [ -n "${TORCHRUN:-}" ]; then
    LAUNCHER=("$TORCHRUN")
  else
    LAUNCHER=("$PYTHON_BIN" -m rebalance_hca.engine.torchrun)
  fi
  LAUNCHER+=(--nproc_per_node="$processes" --nnodes="$nnodes" --max_restarts="${MAX_RESTARTS:-0}")
  if [ -n "${RDZV_ENDPOINT:-}" ]; then
    LAUNCHER+=(--rdzv_backend=c10d --rdzv_endpoint="$RDZV_ENDPOINT" --rdzv_id="${RDZV_ID:-rebalance_hca}"
               --rdzv_conf="join_timeout=${RDZV_TIMEOUT:-600}")
  elif [ "$nnodes" != 1 ]; then
    if [ -z "${MASTER_ADDR:-}" ]; then
      echo "NNODES $nnodes needs RDZV_ENDPOINT (a c10d rendezvous) or MASTER_ADDR (machine 0's address, with" \
           "NODE_RANK on every machine)" >&2
      return 2
    fi
    LAUNCHER+=(--node_rank="${NODE_RANK:-0}" --master_addr="$MASTER_ADDR" --master_port="${MASTER_PORT:-29500}"
               --rdzv_conf="timeout=${RDZV_TIMEOUT:-600}")
  elif [ -n "${MASTER_PORT:-}" ]; then
    LAUNCHER+=(--master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="$MASTER_PORT")
  fi
}

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

# relation_tool TOOL SCRIPT MODE STAGE [KEY VALUE ...]: tools/TOOL with the mode's and the stage's keys,
# OUTPUT_DIR, and the caller's overrides last.
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
  launch_setup
  # shellcheck disable=SC2086
  exec "${LAUNCHER[@]}" "tools/$tool" \
    --config-file "$config" $mode_opts $stage_opts "${DEVICE_OPTS[@]}" OUTPUT_DIR "$output_dir" "$@"
}

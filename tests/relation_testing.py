"""Shared helpers of the relation-head tests: a tiny SynthVG and tiny relation configs on it."""
from __future__ import annotations

import os
import socket

from rebalance_hca.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTHETIC_HCA_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN.yaml")
MODE_FLAGS = {"predcls": ("True", "True"), "sgcls": ("True", "False"), "sgdet": ("False", "False")}

# The synthetic HCA config shrunk further: small detector heads and a small context.
TINY_RELATION_OPTS = [
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32",
    "MODEL.RPN.RPN_MID_CHANNEL", "32",
    "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "64",
    "MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "32",
    "MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM", "64",
    "MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE", "64",
    "MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD", "2",
    "MODEL.ROI_RELATION_HEAD.TRANSFORMER.KEY_DIM", "16",
    "MODEL.ROI_RELATION_HEAD.TRANSFORMER.VAL_DIM", "16",
    "MODEL.ROI_RELATION_HEAD.TRANSFORMER.INNER_DIM", "64",
    "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "12",
    "DATASETS.NUM_VAL_IM", "10",
    "DATALOADER.NUM_WORKERS", "0",
    "SOLVER.IMS_PER_BATCH", "4",
    "TEST.IMS_PER_BATCH", "4",
]


def mode_opts(mode: str) -> list[str]:
    use_gt_box, use_gt_label = MODE_FLAGS[mode]
    return ["MODEL.ROI_RELATION_HEAD.USE_GT_BOX", use_gt_box, "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL",
            use_gt_label]


def tiny_relation_config(data_dir: str, output_dir: str, mode: str = "predcls", *extra: str):
    """A frozen tiny relation config on the SynthVG at ``data_dir`` (its ``vg`` folder holds GloVe)."""
    return load_config(SYNTHETIC_HCA_CONFIG, [
        *TINY_RELATION_OPTS, "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"),
        "OUTPUT_DIR", output_dir, *mode_opts(mode), *extra])


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now (bound to port 0, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

"""Shared helpers of the relation-head tests: a tiny SynthVG and tiny relation configs on it."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from rebalance_hca.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTHETIC_HCA_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN.yaml")
SYNTHETIC_MOTIFS_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_Motifs_R18_FPN.yaml")
SYNTHETIC_IMP_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_IMP_R18_FPN.yaml")
SYNTHETIC_CAUSAL_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_Causal_Motifs_R18_FPN.yaml")
SYNTHETIC_CAUSAL_VCTREE_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_Causal_VCTree_R18_FPN.yaml")
SYNTHETIC_VCTREE_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_VCTree_R18_FPN.yaml")
MODE_FLAGS = {"predcls": ("True", "True"), "sgcls": ("True", "False"), "sgdet": ("False", "False")}

# The synthetic configs shrunk further: small detector heads and a small context (any predictor).
TINY_MODEL_OPTS = [
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32",
    "MODEL.RPN.RPN_MID_CHANNEL", "32",
    "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "64",
    "MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "32",
    "MODEL.ROI_RELATION_HEAD.CONTEXT_POOLING_DIM", "64",
    "MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE", "64",
    "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "12",
    "DATASETS.NUM_VAL_IM", "10",
    "DATALOADER.NUM_WORKERS", "0",
    "SOLVER.IMS_PER_BATCH", "4",
    "TEST.IMS_PER_BATCH", "4",
]
# ... and, for the attention contexts of the synthetic HCA config, small attention cells.
TINY_RELATION_OPTS = [
    *TINY_MODEL_OPTS,
    "MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD", "2",
    "MODEL.ROI_RELATION_HEAD.TRANSFORMER.KEY_DIM", "16",
    "MODEL.ROI_RELATION_HEAD.TRANSFORMER.VAL_DIM", "16",
    "MODEL.ROI_RELATION_HEAD.TRANSFORMER.INNER_DIM", "64",
]



@dataclass(frozen=True)
class RecipeContext:
    """A context the ReBalance recipe's test runs: its synthetic config with the tiny options it accepts (and
    option overrides, e.g. another predictor on the same config), and the parameters of its classifier head
    (names below ``clean_classifier.``), which are what stage 2 trains."""

    config_file: str
    tiny_opts: list[str]
    classifier_parameters: frozenset[str]
    overrides: tuple[str, ...] = ()


_BIAS = "freq_bias.obj_baseline.weight"
_PAIR_CLASSIFIER = frozenset({"rel_compress.weight", "rel_compress.bias", "ctx_compress.weight", "ctx_compress.bias",
                              _BIAS})
RECIPE_CONTEXTS = {
    "hca": RecipeContext(SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, _PAIR_CLASSIFIER),
    "transformer": RecipeContext(SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, _PAIR_CLASSIFIER,
                                 ("MODEL.ROI_RELATION_HEAD.PREDICTOR", "TransformerPredictor")),
    "motifs": RecipeContext(SYNTHETIC_MOTIFS_CONFIG, TINY_MODEL_OPTS,
                            frozenset({"rel_compress.weight", "rel_compress.bias", _BIAS})),
    "vctree": RecipeContext(SYNTHETIC_VCTREE_CONFIG, TINY_MODEL_OPTS,
                            frozenset({"ctx_compress.weight", "ctx_compress.bias", _BIAS})),
    "imp": RecipeContext(SYNTHETIC_IMP_CONFIG, TINY_MODEL_OPTS, frozenset({"weight", "bias"})),
}
"""Every context the two-stage recipe (stage 1 -> confusion matrix -> stage 2 -> test) is tested on
(tests/test_relation_training.py); another context is one more entry."""


def mode_opts(mode: str) -> list[str]:
    use_gt_box, use_gt_label = MODE_FLAGS[mode]
    return ["MODEL.ROI_RELATION_HEAD.USE_GT_BOX", use_gt_box, "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL",
            use_gt_label]


def _tiny_config(config_file: str, tiny_opts: list[str], data_dir: str, output_dir: str, mode: str, extra):
    return load_config(config_file, [
        *tiny_opts, "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"),
        "OUTPUT_DIR", output_dir, *mode_opts(mode), *extra])


def tiny_relation_config(data_dir: str, output_dir: str, mode: str = "predcls", *extra: str):
    """A frozen tiny relation config on the SynthVG at ``data_dir`` (its ``vg`` folder holds GloVe)."""
    return _tiny_config(SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, data_dir, output_dir, mode, extra)


def tiny_synthetic_config(config_file: str, data_dir: str, output_dir: str, mode: str = "predcls", *extra: str):
    """A frozen tiny config from a synthetic config without attention cells (SYNTHETIC_MOTIFS_CONFIG,
    SYNTHETIC_CAUSAL_CONFIG, SYNTHETIC_CAUSAL_VCTREE_CONFIG) on the SynthVG at ``data_dir``."""
    return _tiny_config(config_file, TINY_MODEL_OPTS, data_dir, output_dir, mode, extra)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now (bound to port 0, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

"""The SGB keys this project accepts only at their default value: the one list of them, and the check.

Every key of ``defaults.py`` is either read by the code that implements it or listed here. A key listed here
names an SGB feature this project does not build (or, for the detector's alternatives, the one variant it
builds); a config that sets it to anything but its default is refused with one line naming the key, so that a
command line copied from SGB never runs with a setting silently ignored. docs/configuration.md lists the keys
with the same reasons. To implement one of them, read it where it takes effect and remove it from here.
"""
from __future__ import annotations

from typing import Any

from yacs.config import CfgNode

# key -> what it is in SGB and what to use here instead (one clause, printed after the key).
UNSUPPORTED_KEYS: dict[str, str] = {
    # The detector: the torchvision Faster / Mask R-CNN with an FPN is the one detector built.
    "MODEL.META_ARCHITECTURE": "the detector is always GeneralizedRCNN (torchvision's Faster / Mask R-CNN)",
    "MODEL.RPN_ONLY": "SGB's proposal-only model is not built",
    "MODEL.RETINANET_ON": "SGB's RetinaNet is not built",
    "MODEL.KEYPOINT_ON": "SGB's keypoint head is not built",
    "MODEL.ATTRIBUTE_ON": "SGB's attribute head is not built",
    "MODEL.CLS_AGNOSTIC_BBOX_REG": "the box head regresses one box per class",
    "MODEL.FPN.USE_GN": "the FPN has no GroupNorm variant",
    "MODEL.FPN.USE_RELU": "the FPN has no ReLU variant",
    "MODEL.RPN.USE_FPN": "the RPN always runs on the FPN levels",
    "MODEL.RPN.RPN_HEAD": "the RPN head is always SingleConvRPNHead",
    "MODEL.ROI_HEADS.USE_FPN": "the box head always pools from the FPN levels",
    "MODEL.ROI_BOX_HEAD.FEATURE_EXTRACTOR": "the box features are always FPN2MLPFeatureExtractor's",
    "MODEL.ROI_BOX_HEAD.PREDICTOR": "the box predictor is always FPNPredictor",
    "MODEL.FLIP_AUG": ("SGB's dataset-level flip (which flips the image but not its boxes); the training flip "
                       "is INPUT.HORIZONTAL_FLIP_PROB_TRAIN"),
    # The relation head.
    "MODEL.ROI_RELATION_HEAD.FEATURE_EXTRACTOR": "the relation features are always RelationFeatureExtractor's",
    "MODEL.ROI_RELATION_HEAD.LABEL_SMOOTHING_LOSS": "SGB's label-smoothed object loss is not built",
    "MODEL.ROI_RELATION_HEAD.VAL_ALPHA": "read only by SHA-GCL's TransformerSuperPredictor, not built here",
    "TEST.RELATION.REQUIRE_OVERLAP": "test pairs are every ordered pair of boxes (False in every SGB config)",
    "TEST.RELATION.SYNC_GATHER": ("each process keeps its compact predictions on the CPU and they are gathered "
                                  "once after the split, so there is nothing to trade"),
    # Solver.
    "SOLVER.CLIP_NORM": ("SGB declares it and never reads it; its relation trainer clips with "
                         "SOLVER.GRAD_NORM_CLIP, as this project does"),
    "SOLVER.UPDATE_SCHEDULE_DURING_LOAD": "a resumed run always restores the saved schedule",
    # Test-time options of SGB's detector and custom-image tools.
    "TEST.BBOX_AUG.ENABLED": "SGB's test-time box augmentation is not built",
    "TEST.BBOX_AUG.H_FLIP": "SGB's test-time box augmentation is not built",
    "TEST.BBOX_AUG.SCALES": "SGB's test-time box augmentation is not built",
    "TEST.BBOX_AUG.MAX_SIZE": "SGB's test-time box augmentation is not built",
    "TEST.BBOX_AUG.SCALE_H_FLIP": "SGB's test-time box augmentation is not built",
    "TEST.SAVE_PROPOSALS": "SGB's proposal dump is not built",
    "TEST.DETECTIONS_PER_IMG": "read only by SGB's RetinaNet; the detector keeps MODEL.ROI_HEADS.DETECTIONS_PER_IMG",
    "TEST.EXPECTED_RESULTS": "SGB's check of COCO metrics against expected values is not built",
    "TEST.EXPECTED_RESULTS_SIGMA_TOL": "SGB's check of COCO metrics against expected values is not built",
    "TEST.CUSTUM_EVAL": "scene graphs of your own images come from tools/demo.py",
    "TEST.CUSTUM_PATH": "scene graphs of your own images come from tools/demo.py (--input)",
    "DETECTED_SGG_DIR": "scene graphs of your own images come from tools/demo.py (OUTPUT_DIR)",
    "AMP_VERBOSE": "apex's verbosity; torch.amp has none",
}


def config_value(cfg: CfgNode, dotted_key: str) -> Any:
    """The value of ``dotted_key`` (e.g. "MODEL.RPN.USE_FPN") in ``cfg``."""
    node = cfg
    for part in dotted_key.split("."):
        node = node[part]
    return node


def _comparable(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def unsupported_settings(cfg: CfgNode, defaults: CfgNode) -> list[str]:
    """One description per UNSUPPORTED_KEYS key whose value in ``cfg`` differs from ``defaults``:
    "KEY VALUE: this project does not implement it (REASON; leave it at DEFAULT)"."""
    found = []
    for key, reason in UNSUPPORTED_KEYS.items():
        value, default = config_value(cfg, key), config_value(defaults, key)
        if _comparable(value) != _comparable(default):
            found.append(f"{key} {value!r}: this project does not implement it ({reason}; leave it at {default!r})")
    return found

"""Freezing the detector under the relation head (docs/reference.md#frozen-detector, #deliberate-deviations).

SGB freezes the backbone, RPN and box head by ``requires_grad = False`` (BatchNorm is FrozenBatchNorm2d
anyway) but leaves them in train mode, so in SGDet the RPN uses its TRAIN settings. This project departs
on purpose: a frozen detector also keeps eval behaviour, whatever ``train()`` the enclosing model calls, so
its outputs do not depend on the relation head's mode. The RPN then uses its TEST top-N settings (equal to
the TRAIN ones in the relation configs), and GT boxes are added to SGDet proposals by ``detect``'s
``add_gt_boxes`` argument (ADD_GTBOX_TO_PROPOSAL_IN_TRAIN) instead of by the RPN's train mode.
"""
from __future__ import annotations

from .detector import SceneGraphDetector


def freeze_detector(detector: SceneGraphDetector) -> SceneGraphDetector:
    """Set requires_grad False on every detector parameter and pin the detector to eval behaviour.

    Returns the same detector, for chaining.
    """
    for parameter in detector.parameters():
        parameter.requires_grad_(False)
    detector.frozen = True
    detector.eval()
    return detector

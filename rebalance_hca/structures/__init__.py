"""Box operations (with SGB's +1 legacy variants where metrics need them) and containers."""
from .boxes import (
    box_area_legacy,
    box_iou_legacy,
    cxcywh_to_xyxy_truncated,
    paired_iou_legacy,
    paired_positive_intersection,
    positive_intersection,
    scale_xyxy,
)

__all__ = ["box_area_legacy", "box_iou_legacy", "cxcywh_to_xyxy_truncated", "paired_iou_legacy",
           "paired_positive_intersection", "positive_intersection",
           "scale_xyxy"]

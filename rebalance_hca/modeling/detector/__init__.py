"""The detector: Faster/Mask R-CNN on torchvision components, its SGDet post-processing and freezing."""
from .backbone import CONV_BODIES, FPN_FEATURE_NAMES
from .build import build_detector
from .detector import SceneGraphDetector
from .freezing import freeze_detector
from .roi_heads import BoxHeadOutput
from .sgdet_postprocess import Detections, SGDetPostProcessor

__all__ = ["BoxHeadOutput", "CONV_BODIES", "Detections", "FPN_FEATURE_NAMES", "SGDetPostProcessor",
           "SceneGraphDetector", "build_detector", "freeze_detector"]

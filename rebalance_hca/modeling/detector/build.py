"""``build_detector(cfg)``: the one place where the config meets the detector (docs/reference.md#detector)."""
from __future__ import annotations

import logging
import os

from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from ..weights import checkpoint_box_convention
from .backbone import FPN_FEATURE_NAMES, build_resnet_fpn_backbone
from .conventions import BoxConvention, box_convention
from .detector import SceneGraphDetector
from .roi_heads import DetectorRoIHeads, build_fpn_roi_pooler, init_box_head_like_sgb
from .rpn import FixedStrideAnchorGenerator, FPNRegionProposalNetwork, SingleConvRPNHead

logger = logging.getLogger(__name__)

def check_detector_config(cfg) -> None:
    """Raise ValueError naming the key for a mask head torchvision cannot build. (The SGB alternatives this
    detector does not build are refused when the config is loaded: ``config.unsupported``.)"""
    mask_head = cfg.MODEL.ROI_MASK_HEAD
    if cfg.MODEL.MASK_ON and mask_head.RESOLUTION != 2 * mask_head.POOLER_RESOLUTION:
        raise ValueError(f"MODEL.ROI_MASK_HEAD.RESOLUTION ({mask_head.RESOLUTION}) must be twice POOLER_RESOLUTION "
                         f"({mask_head.POOLER_RESOLUTION}): torchvision's mask predictor upsamples by 2")


# SGB's input normalisation, which its detector weights expect (docs/reference.md#sgb-import-steps).
_SGB_INPUT = {"TO_BGR255": True, "PIXEL_MEAN": [102.9801, 115.9465, 122.7717], "PIXEL_STD": [1.0, 1.0, 1.0]}


def _recorded_box_convention(cfg) -> tuple[str, str, str | None]:
    """(config key, path, convention) of the first of MODEL.WEIGHT, MODEL.PRETRAINED_MODEL_CKPT and
    MODEL.PRETRAINED_DETECTOR_CKPT (in the reverse order of loading: the last loaded gives the detector its
    weights) that is an existing file recording a box convention (an SGB file: "sgb"; our checkpoints: their
    "box_convention" entry); ("", "", None) when none does. A missing file is left to the loader, which
    reports it (or does not need it, when a run resumes)."""
    for key, path in (("MODEL.WEIGHT", cfg.MODEL.WEIGHT),
                      ("MODEL.PRETRAINED_MODEL_CKPT", cfg.MODEL.PRETRAINED_MODEL_CKPT),
                      ("MODEL.PRETRAINED_DETECTOR_CKPT", cfg.MODEL.PRETRAINED_DETECTOR_CKPT)):
        if not path or not os.path.isfile(path):
            continue
        recorded = checkpoint_box_convention(path)
        if recorded:
            return key, path, recorded
    return "", "", None


def _warn_unless_sgb_input(cfg, source: str) -> None:
    """Warn loudly when INPUT.TO_BGR255 / PIXEL_MEAN / PIXEL_STD differ from what SGB's weights expect."""
    differing = []
    for name, expected in _SGB_INPUT.items():
        value = cfg.INPUT[name]
        if (list(value) if isinstance(value, (list, tuple)) else value) != expected:
            differing.append(f"INPUT.{name} {value}")
    if differing:
        logger.warning("%s holds SGB weights, trained on BGR 0-255 input minus PIXEL_MEAN %s with PIXEL_STD %s; this "
                       "config has %s: the detector's outputs will be wrong", source, _SGB_INPUT["PIXEL_MEAN"],
                       _SGB_INPUT["PIXEL_STD"], ", ".join(differing))


def resolve_box_convention(cfg) -> BoxConvention:
    """MODEL.BOX_CONVENTION, or when it is "" the one recorded by the checkpoint that gives the detector its
    weights (``_recorded_box_convention``; "sgb" for an SGB file), else "torchvision". Logs a choice made
    from a checkpoint, and warns when SGB weights meet an input normalisation other than SGB's."""
    key, path, recorded = _recorded_box_convention(cfg)
    if recorded == "sgb":
        _warn_unless_sgb_input(cfg, f"{key} {path}")
    configured = cfg.MODEL.BOX_CONVENTION
    if configured:
        if recorded and recorded != configured:
            logger.warning("MODEL.BOX_CONVENTION %r although %s %s was made with %r (the config wins)", configured,
                           key, path, recorded)
        return box_convention(configured)
    if recorded:
        logger.info("MODEL.BOX_CONVENTION \"\" (auto): %s %s was made with %r, so the detector computes with it",
                    key, path, recorded)
    return box_convention(recorded or "torchvision")


def build_rpn(cfg, in_channels: int, convention: BoxConvention) -> FPNRegionProposalNetwork:
    """The RPN on P2-P6 from MODEL.RPN.*, computing with ``convention``."""
    rpn_cfg = cfg.MODEL.RPN
    num_levels = len(FPN_FEATURE_NAMES) + 1
    if len(rpn_cfg.ANCHOR_SIZES) != num_levels:
        raise ValueError(f"MODEL.RPN.ANCHOR_SIZES needs one size per FPN level P2-P6 ({num_levels}), "
                         f"got {tuple(rpn_cfg.ANCHOR_SIZES)}")
    anchor_generator = FixedStrideAnchorGenerator(
        sizes=[(size,) for size in rpn_cfg.ANCHOR_SIZES],
        aspect_ratios=[tuple(rpn_cfg.ASPECT_RATIOS)] * num_levels,
        strides=rpn_cfg.ANCHOR_STRIDE,
        inclusive=convention.inclusive,
    )
    head = SingleConvRPNHead(in_channels, rpn_cfg.RPN_MID_CHANNEL, len(rpn_cfg.ASPECT_RATIOS))
    return FPNRegionProposalNetwork(
        anchor_generator, head,
        fg_iou_thresh=rpn_cfg.FG_IOU_THRESHOLD,
        bg_iou_thresh=rpn_cfg.BG_IOU_THRESHOLD,
        batch_size_per_image=rpn_cfg.BATCH_SIZE_PER_IMAGE,
        positive_fraction=rpn_cfg.POSITIVE_FRACTION,
        pre_nms_top_n={"training": rpn_cfg.PRE_NMS_TOP_N_TRAIN, "testing": rpn_cfg.PRE_NMS_TOP_N_TEST},
        post_nms_top_n={"training": rpn_cfg.FPN_POST_NMS_TOP_N_TRAIN, "testing": rpn_cfg.FPN_POST_NMS_TOP_N_TEST},
        nms_thresh=rpn_cfg.NMS_THRESH,
        post_nms_top_n_per_level={"training": rpn_cfg.POST_NMS_TOP_N_TRAIN, "testing": rpn_cfg.POST_NMS_TOP_N_TEST},
        fpn_post_nms_per_batch=rpn_cfg.FPN_POST_NMS_PER_BATCH,
        min_size=rpn_cfg.MIN_SIZE,
        convention=convention,
        straddle_thresh=rpn_cfg.STRADDLE_THRESH,
    )


def build_roi_heads(cfg, in_channels: int, convention: BoxConvention) -> DetectorRoIHeads:
    """Box head (FPN2MLPFeatureExtractor + FPNPredictor) and, with MODEL.MASK_ON, torchvision's mask head,
    computing with ``convention``."""
    box_cfg, heads_cfg = cfg.MODEL.ROI_BOX_HEAD, cfg.MODEL.ROI_HEADS
    featmap_names = list(FPN_FEATURE_NAMES)
    box_roi_pool = build_fpn_roi_pooler(featmap_names, box_cfg.POOLER_RESOLUTION, box_cfg.POOLER_SAMPLING_RATIO,
                                        tuple(box_cfg.POOLER_SCALES), inclusive=convention.inclusive)
    box_head = TwoMLPHead(in_channels * box_cfg.POOLER_RESOLUTION ** 2, box_cfg.MLP_HEAD_DIM)
    box_predictor = FastRCNNPredictor(box_cfg.MLP_HEAD_DIM, box_cfg.NUM_CLASSES)
    init_box_head_like_sgb(box_head, box_predictor)
    mask_modules = {}
    if cfg.MODEL.MASK_ON:
        mask_cfg = cfg.MODEL.ROI_MASK_HEAD
        layers = tuple(mask_cfg.CONV_LAYERS)
        mask_modules = {
            "mask_roi_pool": build_fpn_roi_pooler(featmap_names, mask_cfg.POOLER_RESOLUTION,
                                                  mask_cfg.POOLER_SAMPLING_RATIO, tuple(box_cfg.POOLER_SCALES),
                                                  inclusive=convention.inclusive),
            "mask_head": MaskRCNNHeads(in_channels, layers, dilation=1),
            "mask_predictor": MaskRCNNPredictor(layers[-1], layers[-1], box_cfg.NUM_CLASSES),
        }
    return DetectorRoIHeads(
        box_roi_pool, box_head, box_predictor,
        fg_iou_thresh=heads_cfg.FG_IOU_THRESHOLD,
        bg_iou_thresh=heads_cfg.BG_IOU_THRESHOLD,
        batch_size_per_image=heads_cfg.BATCH_SIZE_PER_IMAGE,
        positive_fraction=heads_cfg.POSITIVE_FRACTION,
        bbox_reg_weights=tuple(heads_cfg.BBOX_REG_WEIGHTS),
        postprocessor_options={
            "score_thresh": heads_cfg.SCORE_THRESH,
            "nms_thresh": heads_cfg.NMS,
            "post_nms_per_cls_topn": heads_cfg.POST_NMS_PER_CLS_TOPN,
            "filter_duplicates": heads_cfg.NMS_FILTER_DUPLICATES,
            "detections_per_img": heads_cfg.DETECTIONS_PER_IMG,
        },
        add_gt_boxes_in_train=cfg.MODEL.ROI_RELATION_HEAD.ADD_GTBOX_TO_PROPOSAL_IN_TRAIN,
        convention=convention,
        **mask_modules,
    )


def build_detector(cfg) -> SceneGraphDetector:
    """Faster R-CNN (Mask R-CNN with MODEL.MASK_ON) from MODEL.BACKBONE / RESNETS / RPN / ROI_* keys.

    Backbone weights: MODEL.BACKBONE_WEIGHTS (a local torchvision-format ResNet state dict), else
    torchvision's download only if MODEL.BACKBONE_DOWNLOAD is True, else random init. Box conventions:
    ``resolve_box_convention``. The model is on the CPU; move it with ``.to(cfg.MODEL.DEVICE)``.
    """
    check_detector_config(cfg)
    convention = resolve_box_convention(cfg)
    if cfg.MODEL.BACKBONE_DOWNLOAD and not cfg.MODEL.BACKBONE_WEIGHTS and cfg.INPUT.TO_BGR255:
        logger.warning("torchvision's ImageNet weights expect RGB in [0, 1] normalised by ImageNet mean/std; with "
                       "INPUT.TO_BGR255 True the input is BGR 0-255. See docs/detector.md for the INPUT keys.")
    resnets = cfg.MODEL.RESNETS
    backbone = build_resnet_fpn_backbone(
        cfg.MODEL.BACKBONE.CONV_BODY,
        num_groups=resnets.NUM_GROUPS,
        width_per_group=resnets.WIDTH_PER_GROUP,
        stride_in_1x1=resnets.STRIDE_IN_1X1,
        out_channels=resnets.BACKBONE_OUT_CHANNELS,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_CONV_BODY_AT,
        weights_file=cfg.MODEL.BACKBONE_WEIGHTS,
        download=cfg.MODEL.BACKBONE_DOWNLOAD,
    )
    return SceneGraphDetector(backbone, build_rpn(cfg, backbone.out_channels, convention),
                              build_roi_heads(cfg, backbone.out_channels, convention))

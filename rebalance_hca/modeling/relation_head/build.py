"""Where the config meets the relation head: sampler, feature extractors, predictor and loss."""
from __future__ import annotations

from typing import Callable

import numpy as np
from torch import Tensor, nn

from ..detector import SceneGraphDetector
from .features import BoxFeatureExtractor, UnionFeatureExtractor
from .loss import ClassBalancedCrossEntropy, PredicateReweightingLoss
from .predictors import PredictorParts, build_predictor
from .relation_head import RelationHead
from .sampling import RelationPairSampler

LOSS_TYPES = ("PredicateReweighting", "CrossEntropy", "ClassBalanced")


def relation_loss_type(cfg) -> str:
    """MODEL.ROI_RELATION_HEAD.LOSS.TYPE, or when it is empty the stage's: CrossEntropy for stage 1's common
    model, PredicateReweighting for stage 2 (WITH_CLEAN_CLASSIFIER)."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    if head.LOSS.TYPE:
        return head.LOSS.TYPE
    return "PredicateReweighting" if head.WITH_CLEAN_CLASSIFIER else "CrossEntropy"


def build_relation_loss(cfg, confusion_matrix: np.ndarray | None, predicate_counts: np.ndarray) -> nn.Module:
    """The relation loss of ``relation_loss_type`` (constants in MODEL.ROI_RELATION_HEAD.LOSS): RB's predicate
    reweighting (with the confusion matrix's correlation, zero without one), plain CE, or class-balanced CE
    over ``predicate_counts`` (P,)."""
    loss = cfg.MODEL.ROI_RELATION_HEAD.LOSS
    loss_type = relation_loss_type(cfg)
    if loss_type == "PredicateReweighting":
        return PredicateReweightingLoss(
            confusion_matrix, correlation_threshold=loss.CORRELATION_THRESHOLD,
            mitigation_exponent=loss.MITIGATION_EXPONENT, compensation_exponent=loss.COMPENSATION_EXPONENT,
            max_count_ratio=loss.MAX_COUNT_RATIO)
    if loss_type == "CrossEntropy":
        return nn.CrossEntropyLoss()
    if loss_type == "ClassBalanced":
        return ClassBalancedCrossEntropy(predicate_counts, beta=loss.CLASS_BALANCED_BETA)
    raise ValueError(f"MODEL.ROI_RELATION_HEAD.LOSS.TYPE must be one of {LOSS_TYPES}, got {loss.TYPE!r}")


def build_pair_sampler(cfg) -> RelationPairSampler:
    head = cfg.MODEL.ROI_RELATION_HEAD
    return RelationPairSampler(
        batch_size_per_image=head.BATCH_SIZE_PER_IMAGE, positive_fraction=head.POSITIVE_FRACTION,
        fg_iou_threshold=cfg.MODEL.ROI_HEADS.FG_IOU_THRESHOLD, num_sample_per_gt_rel=head.NUM_SAMPLE_PER_GT_REL,
        require_box_overlap=head.REQUIRE_BOX_OVERLAP)


def build_relation_head(cfg, detector: SceneGraphDetector, mode: str, object_vectors, pred_dist, fg_counts,
                        confusion_matrix: np.ndarray | None, predicate_counts: np.ndarray,
                        decoder_vectors: Callable[[], Tensor] | None = None) -> RelationHead:
    """The relation head on top of ``detector`` (whose box head is copied, so load its weights first).

    object_vectors (C, EMBED_DIM), pred_dist (C, C, P), fg_counts (C, C, P), decoder_vectors: see
    ``PredictorParts``; predicate_counts (P,): training counts for the class-balanced loss.
    """
    roi_heads = detector.roi_heads
    box_features = BoxFeatureExtractor(roi_heads.box_roi_pool, roi_heads.box_head)
    parts = PredictorParts(mode=mode, object_vectors=object_vectors, pred_dist=pred_dist, fg_counts=fg_counts,
                           confusion_matrix=confusion_matrix, box_channels=box_features.out_channels,
                           union_channels=box_features.out_channels, decoder_vectors=decoder_vectors)
    predictor = build_predictor(cfg, parts)
    union_features = None
    if predictor.uses_union_features:
        union_features = UnionFeatureExtractor(
            roi_heads.box_roi_pool, roi_heads.box_head, feature_channels=cfg.MODEL.RESNETS.BACKBONE_OUT_CHANNELS,
            pool_all_levels=cfg.MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS)
    return RelationHead(mode, box_features, union_features, predictor, build_pair_sampler(cfg),
                        build_relation_loss(cfg, confusion_matrix, predicate_counts),
                        num_predicates=cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES, nms_threshold=cfg.TEST.RELATION.LATER_NMS_PREDICTION_THRES,
                        pairs_per_chunk=cfg.TEST.RELATION.PAIRS_PER_CHUNK)

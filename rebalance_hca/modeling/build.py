"""``build_model(cfg)``: the one place where the config meets the whole scene-graph model."""
from __future__ import annotations

import logging

import torch

from ..data import get_dataset_statistics, get_glove_embeddings
from ..data.build import TrainVocabulary, train_vocabulary
from ..evaluation import evaluation_mode
from .detector import build_detector, freeze_detector
from .relation_head.build import build_relation_head
from .relation_head.confusion import load_confusion_matrix
from .scene_graph import SceneGraphModel
from .weights import load_model_weights

logger = logging.getLogger(__name__)


def relation_mode(cfg) -> str:
    """"predcls" | "sgcls" | "sgdet" from MODEL.ROI_RELATION_HEAD.USE_GT_BOX / USE_GT_OBJECT_LABEL (SGB's rule)."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    return evaluation_mode(head.USE_GT_BOX, head.USE_GT_OBJECT_LABEL)


def model_vocabulary(cfg) -> TrainVocabulary:
    """The train dataset's vocabulary, checked against ROI_BOX_HEAD.NUM_CLASSES and ROI_RELATION_HEAD.NUM_CLASSES."""
    vocabulary = train_vocabulary(cfg)
    for key, configured, actual, what in (
            ("MODEL.ROI_BOX_HEAD.NUM_CLASSES", cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES, len(vocabulary.ind_to_classes),
             "object classes"),
            ("MODEL.ROI_RELATION_HEAD.NUM_CLASSES", cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES,
             len(vocabulary.ind_to_predicates), "predicates")):
        if configured != actual:
            raise ValueError(f"{key} is {configured} but {vocabulary.source} defines {actual} {what} "
                             "(background included)")
    return vocabulary


def build_model(cfg) -> SceneGraphModel:
    """Detector (MODEL.PRETRAINED_DETECTOR_CKPT loaded when set, unless MODEL.WEIGHT is: that file gives the
    whole model, detector included, when the tools load it; then frozen) + relation head.

    The relation head's box and union extractors start as copies of the detector's box head, the frequency
    bias from the training statistics (cached in OUTPUT_DIR), the label embeddings from GloVe (GLOVE_DIR; a
    label decoder's "start" + classes table only when its predictor asks for it),
    and the loss / transfer classifier read MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX when it is set. The
    model is on the CPU. Stage-2 loading and freezing are ``rebalance_hca.engine.stages``'.
    """
    mode = relation_mode(cfg)
    vocabulary = model_vocabulary(cfg)
    detector = build_detector(cfg)
    if cfg.MODEL.PRETRAINED_DETECTOR_CKPT and cfg.MODEL.WEIGHT:
        logger.info("MODEL.PRETRAINED_DETECTOR_CKPT not loaded: MODEL.WEIGHT %s gives the whole model, detector "
                    "included", cfg.MODEL.WEIGHT)
    elif cfg.MODEL.PRETRAINED_DETECTOR_CKPT:
        load_model_weights(detector, cfg.MODEL.PRETRAINED_DETECTOR_CKPT, key="MODEL.PRETRAINED_DETECTOR_CKPT")
        logger.info("Loaded the detector from MODEL.PRETRAINED_DETECTOR_CKPT %s", cfg.MODEL.PRETRAINED_DETECTOR_CKPT)
    freeze_detector(detector)
    confusion_path = cfg.MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX
    confusion = (load_confusion_matrix(confusion_path, len(vocabulary.ind_to_predicates))
                 if confusion_path else None)
    statistics = get_dataset_statistics(cfg)
    relation_head = build_relation_head(
        cfg, detector, mode,
        object_vectors=get_glove_embeddings(cfg, vocabulary.ind_to_classes),
        pred_dist=torch.from_numpy(statistics.pred_dist),
        fg_counts=statistics.fg_matrix,
        confusion_matrix=confusion,
        predicate_counts=vocabulary.predicate_counts,
        decoder_vectors=lambda: get_glove_embeddings(cfg, ["start", *vocabulary.ind_to_classes]))
    return SceneGraphModel(detector, relation_head, mode)

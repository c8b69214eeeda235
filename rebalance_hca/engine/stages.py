"""The two stages of ReBalance-HCA (SPEC §6, §0).

Stage 1 (MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER False) trains the whole relation head on the full
train split. Stage 2 (WITH_CLEAN_CLASSIFIER True) loads the stage-1 model from MODEL.PRETRAINED_MODEL_CKPT,
the clean classifier starting as an exact copy of the trained general classifier, and trains the clean
classifier alone on the rebalanced split; every other part is frozen and runs in eval mode without autograd
(a departure from RB, which leaves dropout and BatchNorm updates on in the frozen part).
"""
from __future__ import annotations

import logging

from torch import nn

from ..modeling.weights import model_state_of, read_checkpoint, unwrap_model
from ..utils.state_dict import load_state_dict_checked

logger = logging.getLogger(__name__)

GENERAL_CLASSIFIER = ".general_classifier."
CLEAN_CLASSIFIER = ".clean_classifier."
PRETRAINED_MODEL_KEY = "MODEL.PRETRAINED_MODEL_CKPT"


def is_stage2(cfg) -> bool:
    return bool(cfg.MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER)


def stage2_state_from_stage1(stage1_state: dict, model_keys: list[str]) -> dict:
    """The stage-1 state dict completed for a stage-2 model: every ``*.clean_classifier.*`` key of the model
    takes the stage-1 ``*.general_classifier.*`` tensor of the same name (SPEC §6.2). Raises KeyError
    naming a clean key without a general counterpart."""
    state = dict(stage1_state)
    for key in model_keys:
        if CLEAN_CLASSIFIER in key and key not in stage1_state:
            source = key.replace(CLEAN_CLASSIFIER, GENERAL_CLASSIFIER)
            if source not in stage1_state:
                raise KeyError(f"the stage-1 checkpoint has no {source} to initialise {key}")
            state[key] = stage1_state[source].clone()
    return state


def load_stage1_model(model: nn.Module, path: str) -> None:
    """Load the stage-1 checkpoint ``path`` (MODEL.PRETRAINED_MODEL_CKPT) into a stage-2 model, the clean
    classifier copied from the general one. Every other key and shape must fit (the same mode, predictor and
    dimensions as stage 1); a mismatch raises StateDictMismatchError listing the keys."""
    model = unwrap_model(model)
    if not path:
        raise ValueError(f"stage 2 (MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER True) needs the stage-1 model: set "
                         f"{PRETRAINED_MODEL_KEY} to the stage-1 run's model_final.pth")
    stage1_state = model_state_of(read_checkpoint(path))
    state = stage2_state_from_stage1(stage1_state, list(model.state_dict()))
    load_state_dict_checked(model, state, source=f"{PRETRAINED_MODEL_KEY} {path}")
    logger.info("Loaded the stage-1 model from %s %s; the clean classifier starts from its general classifier",
                PRETRAINED_MODEL_KEY, path)


def freeze_for_stage2(model: nn.Module) -> list[str]:
    """Train only what the predictor trains in stage 2 (the clean classifier); everything else is frozen
    and kept in eval mode. Returns the trainable parameter names (relative to the relation head)."""
    head = unwrap_model(model).relation_head
    trainable = {name for name, _ in head.named_parameters()
                 if name.startswith("predictor.") and head.predictor.trainable_in_stage2(name[len("predictor."):])}
    if not trainable:
        raise ValueError(f"{type(head.predictor).__name__} has nothing to train in stage 2 "
                         "(MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER needs a predictor with a clean classifier)")
    head.restrict_training(trainable)
    return sorted(trainable)

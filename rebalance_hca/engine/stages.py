"""The two stages of ReBalance-HCA (docs/reference.md#two-stage-recipe, #deliberate-deviations).

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

PRETRAINED_MODEL_KEY = "MODEL.PRETRAINED_MODEL_CKPT"


def is_stage2(cfg) -> bool:
    return bool(cfg.MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER)


def load_stage1_model(model: nn.Module, path: str) -> None:
    """Load the stage-1 checkpoint ``path`` (MODEL.PRETRAINED_MODEL_CKPT) into a stage-2 model, completed by
    the model's predictor for its stage-2 form (``SceneGraphModel.complete_stage2_state``: the clean
    classifier copied from the general one). Every other key and shape must fit (the same mode, predictor and
    dimensions as stage 1); a mismatch raises StateDictMismatchError listing the keys."""
    model = unwrap_model(model)
    if not path:
        raise ValueError(f"stage 2 (MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER True) needs the stage-1 model: set "
                         f"{PRETRAINED_MODEL_KEY} to the stage-1 run's model_final.pth")
    source = f"{PRETRAINED_MODEL_KEY} {path}"
    try:
        state = model.complete_stage2_state(model_state_of(read_checkpoint(path)))
    except KeyError as error:
        raise KeyError(f"{source}: {error.args[0]}") from error
    load_state_dict_checked(model, state, source=source)
    logger.info("Loaded the stage-1 model from %s; the predictor completed it for stage 2", source)


def freeze_for_stage2(model: nn.Module) -> list[str]:
    """Train only what the predictor trains in stage 2 (``RelationPredictor.stage2_parameter_names``);
    everything else is frozen and kept in eval mode. Returns the trainable parameter names (relative to the
    relation head)."""
    head = unwrap_model(model).relation_head
    trainable = set(head.stage2_parameter_names())
    if not trainable:
        raise ValueError(f"{type(head.predictor).__name__} has nothing to train in stage 2 "
                         "(MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER needs a predictor with a clean classifier)")
    head.restrict_training(trainable)
    return sorted(trainable)

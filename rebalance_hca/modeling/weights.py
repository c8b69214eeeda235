"""Reading checkpoints: the model weights of a checkpoint file, and the box convention it was made with.

Checkpoints hold only tensors and plain Python values, so they load with ``torch.load(weights_only=True)``.
A file that is named but missing is an error, never silently replaced; keys or shapes that do not fit are
listed. ``load_model_weights`` also takes SGB's detector and relation-model checkpoints as they are
(``sgb_checkpoint``): into a detector their detector part, into a scene-graph model a relation model whole
(docs/checkpoints.md). Writing checkpoints and resuming a run live in
``engine/checkpoint.py`` (``Checkpointer``).
"""
from __future__ import annotations

import logging
import os
import zipfile
from typing import Any

import torch
from torch import nn

from ..utils.state_dict import load_state_dict_checked
from ..utils.torch_files import load_torch_file
from .sgb_checkpoint import import_sgb_detector_state, import_sgb_relation_state, is_sgb_state

logger = logging.getLogger(__name__)

BOX_CONVENTION_ENTRY = "box_convention"
"""Top-level entry naming the model's MODEL.BOX_CONVENTION ("torchvision" | "sgb") in the checkpoints that
``Checkpointer.save`` and tools/convert_sgb_checkpoint.py write."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def read_checkpoint(path: str, mmap: bool = False) -> dict[str, Any]:
    """``torch.load`` of a checkpoint onto the CPU; FileNotFoundError naming the path when it is absent,
    ValueError naming it when it cannot be read (e.g. truncated). ``mmap``: memory-map the tensors instead of
    reading them (zip-format files; legacy ones are read)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return load_torch_file(path, "checkpoint", mmap=mmap and zipfile.is_zipfile(path))


def model_state_of(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint dict: its "model" entry, or the dict itself if it is a state dict."""
    return data["model"] if isinstance(data.get("model"), dict) else data


def checkpoint_box_convention(path: str) -> str | None:
    """The box convention a checkpoint was made with: its BOX_CONVENTION_ENTRY, "sgb" for an SGB file, None
    when it does not say (older files). Zip-format files are memory-mapped: only the key names are read."""
    data = read_checkpoint(path, mmap=True)
    if isinstance(data, dict) and isinstance(data.get(BOX_CONVENTION_ENTRY), str):
        return data[BOX_CONVENTION_ENTRY]
    return "sgb" if is_sgb_state(model_state_of(data)) else None


def load_model_weights(module: nn.Module, path: str, key: str = "checkpoint") -> None:
    """Load only the model weights of checkpoint ``path`` into ``module``; every key and shape must fit
    (e.g. MODEL.PRETRAINED_DETECTOR_CKPT into the relation model's detector). An SGB checkpoint (recognised
    by its keys) is imported (``sgb_checkpoint``): into a detector its detector part, into a scene-graph model
    a relation model whole, its predictor checked against the model's MODEL.ROI_RELATION_HEAD.PREDICTOR; the
    log says what was mapped. ``key`` names where the path came from in the error (e.g. the config key)."""
    model = unwrap_model(module)
    source = f"{key} {path}"
    state = model_state_of(read_checkpoint(path))
    if is_sgb_state(state):
        if hasattr(model, "relation_head"):
            predictor = model.relation_head.predictor
            imported = import_sgb_relation_state(state, model, predictor.registered_name or type(predictor).__name__,
                                                 source)
        else:
            imported = import_sgb_detector_state(state, model, source)
        logger.info("%s is %s", source, imported.summary())
        if getattr(model, "box_convention", None) != "sgb":
            logger.warning("%s: the detector uses MODEL.BOX_CONVENTION %r, so it will not reproduce SGB's outputs "
                           "(set MODEL.BOX_CONVENTION sgb, or leave it empty; docs/detector.md)", source,
                           getattr(model, "box_convention", None))
        state = imported.state
    load_state_dict_checked(model, state, source=source)


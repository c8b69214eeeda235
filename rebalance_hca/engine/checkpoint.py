"""Checkpoints: atomic saves and real resume (SPEC §0, §10.7).

A checkpoint ``OUTPUT_DIR/<name>.pth`` holds the model, optimizer, scheduler and AMP grad-scaler states,
the iteration, and the RNG states of every rank (python, numpy, torch CPU, and the rank's own CUDA device
once CUDA is in use). It is written to a temporary file and renamed into place, then
``OUTPUT_DIR/last_checkpoint`` is rewritten (also atomically) to name it.

On resume each rank restores its own RNG state when the number of processes is the one that saved; with
another number, each rank reseeds its generators from (SEED, rank, iteration) and the log says so.

Loading order (``Checkpointer.resume_or_load``): a ``last_checkpoint`` in OUTPUT_DIR wins and restores
everything; otherwise MODEL.WEIGHT, if set, initialises the model weights only (iteration 0). A file that is
named but missing is an error, never silently replaced; keys or shapes that do not fit are listed.
Checkpoints hold only tensors and plain Python values, so they load with ``torch.load(weights_only=True)``.
``load_model_weights`` also takes SGB's detector and relation-model checkpoints as they are
(``sgb_checkpoint``) when loading into a detector.
"""
from __future__ import annotations

import logging
import os
import random
import zipfile
from typing import Any

import numpy as np
import torch
from torch import nn

from ..utils.atomic import atomic_write
from ..utils.comm import all_gather, get_rank, get_world_size
from ..utils.seed import derived_seed, seed_everything
from ..utils.state_dict import load_state_dict_checked
from .sgb_checkpoint import import_sgb_detector_state, is_sgb_state

logger = logging.getLogger(__name__)

LAST_CHECKPOINT_FILE = "last_checkpoint"
BOX_CONVENTION_ENTRY = "box_convention"
"""Top-level entry naming the model's MODEL.BOX_CONVENTION ("torchvision" | "sgb") in the checkpoints that
``Checkpointer.save`` and tools/convert_sgb_checkpoint.py write."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def capture_rng_state() -> dict[str, Any]:
    """This process's python, numpy and torch CPU generator states as tensors / plain values, and, once
    CUDA is initialised, its current device's generator state ("cuda", a uint8 tensor). It never opens a
    CUDA context, nor reads another process's device."""
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_state``; the CUDA state goes to the current device (applied lazily, when
    CUDA initialises) and is skipped on a machine without CUDA."""
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def read_checkpoint(path: str, mmap: bool = False) -> dict[str, Any]:
    """``torch.load`` of a checkpoint onto the CPU; FileNotFoundError naming the path when it is absent.
    ``mmap``: memory-map the tensors instead of reading them (zip-format files; legacy ones are read)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))


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
    (e.g. MODEL.PRETRAINED_DETECTOR_CKPT into the relation model's detector). An SGB checkpoint (detector or
    relation model, recognised by its keys) is imported into a detector (``sgb_checkpoint``) and the log
    says what was mapped. ``key`` names where the path came from in the error (e.g. the config key)."""
    model = unwrap_model(module)
    source = f"{key} {path}"
    state = model_state_of(read_checkpoint(path))
    if is_sgb_state(state):
        imported = import_sgb_detector_state(state, model, source)
        logger.info("%s is %s", source, imported.summary())
        if getattr(model, "box_convention", None) != "sgb":
            logger.warning("%s: the detector uses MODEL.BOX_CONVENTION %r, so it will not reproduce SGB's outputs "
                           "(set MODEL.BOX_CONVENTION sgb, or leave it empty; docs/detector.md)", source,
                           getattr(model, "box_convention", None))
        state = imported.state
    load_state_dict_checked(model, state, source=source)


class Checkpointer:
    """Saves and restores a training run in ``save_dir`` (OUTPUT_DIR).

    ``save`` is collective (it gathers every rank's RNG state); only rank 0 writes (``save_to_disk``).
    ``seed`` is the run's SEED: it reseeds the ranks when a checkpoint saved by another number of processes
    is resumed.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                 grad_scaler: torch.amp.GradScaler | None = None, save_dir: str = "",
                 save_to_disk: bool = True, seed: int = 0) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.grad_scaler = grad_scaler
        self.save_dir = save_dir
        self.save_to_disk = save_to_disk and bool(save_dir)
        self.seed = seed

    def save(self, name: str, iteration: int, point_last: bool = True, **extra: Any) -> str | None:
        """Write ``save_dir/name.pth`` atomically and, with ``point_last``, point ``last_checkpoint`` at it
        (a copy such as ``model_best`` leaves the pointer alone); returns its path on the writing rank, None
        elsewhere."""
        rng_states = all_gather(capture_rng_state())
        if not self.save_to_disk:
            return None
        model = unwrap_model(self.model)
        data: dict[str, Any] = {"model": model.state_dict(), "iteration": iteration, "rng_states": rng_states,
                                **extra}
        if hasattr(model, "box_convention"):
            data[BOX_CONVENTION_ENTRY] = model.box_convention
        for key, owner in (("optimizer", self.optimizer), ("scheduler", self.scheduler),
                           ("grad_scaler", self.grad_scaler)):
            if owner is not None:
                data[key] = owner.state_dict()
        path = os.path.join(self.save_dir, f"{name}.pth")
        with atomic_write(path) as stream:
            torch.save(data, stream)
        if point_last:
            with atomic_write(os.path.join(self.save_dir, LAST_CHECKPOINT_FILE), binary=False) as stream:
                stream.write(os.path.basename(path))
        logger.info("Saved checkpoint %s (iteration %d)", path, iteration)
        return path

    def has_checkpoint(self) -> bool:
        return bool(self.save_dir) and os.path.isfile(os.path.join(self.save_dir, LAST_CHECKPOINT_FILE))

    def last_checkpoint(self) -> str:
        """Path named by ``save_dir/last_checkpoint`` (relative names are relative to save_dir).

        Raises FileNotFoundError when the named file does not exist: a stale pointer is never ignored.
        """
        pointer = os.path.join(self.save_dir, LAST_CHECKPOINT_FILE)
        with open(pointer, encoding="utf-8") as stream:
            name = stream.read().strip()
        path = name if os.path.isabs(name) else os.path.join(self.save_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{pointer} names {path}, which does not exist; restore that file or remove "
                                    f"{pointer} to start without resuming")
        return path

    def resume_or_load(self, weight_file: str = "", resume: bool = True) -> dict[str, Any]:
        """Resume from ``last_checkpoint`` if there is one (and ``resume``), else load ``weight_file``
        weights, else nothing.

        Returns the checkpoint's extra data with at least "iteration" (0 unless resumed).
        """
        if resume and self.has_checkpoint():
            path = self.last_checkpoint()
            if weight_file:
                logger.info("Resuming from %s; MODEL.WEIGHT %s is not used", path, weight_file)
            return self._started_alike(self.resume(path), path)
        if weight_file:
            logger.info("Loading model weights from MODEL.WEIGHT %s", weight_file)
            load_model_weights(self.model, weight_file)
        return self._started_alike({"iteration": 0}, "")

    def _started_alike(self, extra: dict[str, Any], path: str) -> dict[str, Any]:
        """``extra`` once every rank has checked that all resumed the same checkpoint file at the same iteration
        (collective). A ValueError listing each rank's start otherwise: on several machines OUTPUT_DIR must be
        one folder that all of them see."""
        starts = all_gather((os.path.basename(path), extra["iteration"]))
        if len(set(starts)) > 1:
            listing = ", ".join(f"rank {rank}: {name or 'no checkpoint'} at iteration {iteration}"
                                for rank, (name, iteration) in enumerate(starts))
            raise ValueError(f"the ranks do not start from the same checkpoint ({listing}): OUTPUT_DIR "
                             f"{self.save_dir} must be one folder that every machine sees (a shared file system)")
        return extra

    def resume(self, path: str) -> dict[str, Any]:
        """Restore model, optimizer, scheduler, grad scaler and this rank's RNG state from ``path`` (see the
        module docstring for a different number of processes)."""
        data = read_checkpoint(path)
        load_state_dict_checked(unwrap_model(self.model), model_state_of(data), source=f"checkpoint {path}")
        for key, owner in (("optimizer", self.optimizer), ("scheduler", self.scheduler),
                           ("grad_scaler", self.grad_scaler)):
            if owner is None:
                continue
            if key not in data:
                raise KeyError(f"checkpoint {path} has no {key} state to resume from")
            try:
                owner.load_state_dict(data[key])
            except (ValueError, KeyError) as error:
                raise ValueError(f"checkpoint {path}: the saved {key} state does not fit this run "
                                 f"({error}); were different parameters trainable when it was saved?") from error
        self._restore_rng(data.get("rng_states"), path, data["iteration"])
        logger.info("Resumed from %s at iteration %d", path, data["iteration"])
        return {key: value for key, value in data.items()
                if key not in ("model", "optimizer", "scheduler", "grad_scaler", "rng_states", BOX_CONVENTION_ENTRY)}

    def _restore_rng(self, rng_states: list[dict] | None, path: str, iteration: int) -> None:
        """This rank's saved state (one per saving rank in ``rng_states``), or a reseed from (seed, rank,
        iteration) when the checkpoint was saved by another number of processes."""
        if not rng_states:
            logger.warning("checkpoint %s has no RNG state; random streams restart", path)
            return
        rank, world_size = get_rank(), get_world_size()
        if len(rng_states) == world_size:
            restore_rng_state(rng_states[rank])
            return
        logger.warning("checkpoint %s was saved by %d process(es), this run has %d: rank %d reseeds its random "
                       "generators from (SEED %d, rank %d, iteration %d) instead of restoring them", path,
                       len(rng_states), world_size, rank, self.seed, rank, iteration)
        seed_everything(derived_seed(self.seed, "resume", rank, iteration))

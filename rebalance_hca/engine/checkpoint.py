"""Checkpoints: atomic saves and real resume (docs/reference.md#deliberate-deviations, #reference-pitfalls).

A checkpoint ``OUTPUT_DIR/<name>.pth`` holds the model, optimizer, scheduler and AMP grad-scaler states,
the iteration, and the RNG states of every rank (python, numpy, torch CPU, and the rank's own CUDA device
once CUDA is in use). It is written to a temporary file and renamed into place, then
``OUTPUT_DIR/last_checkpoint`` is rewritten (also atomically) to name it.

On resume each rank restores its own RNG state when the number of processes is the one that saved; with
another number, each rank reseeds its generators from (SEED, rank, iteration) and the log says so.

Loading order (``Checkpointer.resume_or_load``): a ``last_checkpoint`` in OUTPUT_DIR wins and restores
everything; otherwise MODEL.WEIGHT, if set, initialises the model weights only (iteration 0). A file that is
named but missing is an error, never silently replaced; keys or shapes that do not fit are listed.
Reading a checkpoint's weights (``read_checkpoint``, ``load_model_weights``, SGB's files) lives in
``modeling/weights.py``, below the models that load them.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from ..modeling.weights import (BOX_CONVENTION_ENTRY, load_model_weights, model_state_of, read_checkpoint,
                               unwrap_model)
from ..utils.atomic import atomic_write
from ..utils.comm import all_gather, get_rank, get_world_size
from ..utils.seed import derived_seed, seed_everything
from ..utils.state_dict import load_state_dict_checked

logger = logging.getLogger(__name__)

LAST_CHECKPOINT_FILE = "last_checkpoint"


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

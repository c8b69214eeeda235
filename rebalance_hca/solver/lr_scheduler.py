"""SGB's learning-rate schedules (docs/reference.md#optimisation), both resumable through state_dict / load_state_dict.

Both are stepped once per iteration after the optimizer step; after k steps the LR is
    base_lr x warm(k) x decay,
warm(k) = WARMUP_FACTOR (constant) or WARMUP_FACTOR (1 - k/WARMUP_ITERS) + k/WARMUP_ITERS (linear) for
k < WARMUP_ITERS, else 1. WarmupMultiStepLR: decay = GAMMA ^ #(STEPS <= k). WarmupReduceLROnPlateau:
decay = SCHEDULE.FACTOR ^ stage, the stage rising when the validation metric stops improving.
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from typing import Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler

logger = logging.getLogger(__name__)

WARMUP_METHODS = ("constant", "linear")


def warmup_multiplier(iteration: int, warmup_factor: float, warmup_iters: int, warmup_method: str) -> float:
    """warm(iteration) of the module docstring."""
    if iteration >= warmup_iters:
        return 1.0
    if warmup_method == "constant":
        return warmup_factor
    alpha = iteration / warmup_iters
    return warmup_factor * (1 - alpha) + alpha


def _check_warmup_method(warmup_method: str) -> None:
    if warmup_method not in WARMUP_METHODS:
        raise ValueError(f"SOLVER.WARMUP_METHOD must be one of {WARMUP_METHODS}, got {warmup_method!r}")


class WarmupMultiStepLR(LRScheduler):
    """Warmup, then x gamma at each milestone (SGB's WarmupMultiStepLR). ``step()`` takes no metric."""

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 1.0 / 3, warmup_iters: int = 500, warmup_method: str = "linear",
                 last_epoch: int = -1) -> None:
        if list(milestones) != sorted(milestones):
            raise ValueError(f"SOLVER.STEPS must be increasing, got {tuple(milestones)}")
        _check_warmup_method(warmup_method)
        self.milestones = list(milestones)
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = warmup_multiplier(self.last_epoch, self.warmup_factor, self.warmup_iters, self.warmup_method)
        decay = self.gamma ** bisect_right(self.milestones, self.last_epoch)
        return [base_lr * factor * decay for base_lr in self.base_lrs]


class WarmupReduceLROnPlateau:
    """SGB's WarmupReduceLROnPlateau, called every iteration with the validation metric or None.

    With a metric: an improvement above ``best + threshold`` resets the bad count, otherwise it grows; a
    pending cooldown absorbs it; ``patience`` bad validations raise the stage (LR x ``factor``). After
    ``max_decay_step`` stages ``reached_max_decay`` is True (SGB stops training there).
    Unlike SGB's constructor, which feeds its epoch (0) in as a first metric, the first real
    validation is the first metric seen.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float = 0.5, warmup_factor: float = 1.0 / 3,
                 warmup_iters: int = 500, warmup_method: str = "linear", patience: int = 2,
                 threshold: float = 1e-4, cooldown: int = 1, max_decay_step: int = 7) -> None:
        _check_warmup_method(warmup_method)
        self.optimizer = optimizer
        self.factor = factor
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        self.patience = patience
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_decay_step = max_decay_step
        self.stage_count = 0
        self.best = float("-inf")
        self.num_bad_validations = 0
        self.cooldown_left = cooldown
        self.last_epoch = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self._apply_lr()

    @property
    def reached_max_decay(self) -> bool:
        return self.stage_count >= self.max_decay_step

    def get_lr(self) -> list[float]:
        factor = warmup_multiplier(self.last_epoch, self.warmup_factor, self.warmup_iters, self.warmup_method)
        return [base_lr * factor * self.factor ** self.stage_count for base_lr in self.base_lrs]

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self, metric: float | None = None) -> None:
        """Advance one iteration; ``metric`` is the validation result of this iteration, if one ran."""
        self.last_epoch += 1
        if metric is not None:
            self._observe(float(metric))
        self._apply_lr()

    def _observe(self, metric: float) -> None:
        if metric > self.best + self.threshold:
            self.best = metric
            self.num_bad_validations = 0
        else:
            self.num_bad_validations += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.num_bad_validations = 0
        if self.num_bad_validations >= self.patience:
            self.stage_count += 1
            self.cooldown_left = self.cooldown
            self.num_bad_validations = 0
            logger.info("Trigger Schedule Decay, RL has been reduced by factor %s", self.factor)

    def _apply_lr(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr

    def state_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)
        self._apply_lr()


SCHEDULES = ("WarmupMultiStepLR", "WarmupReduceLROnPlateau")


def make_lr_scheduler(cfg, optimizer: torch.optim.Optimizer) -> WarmupMultiStepLR | WarmupReduceLROnPlateau:
    """The schedule named by SOLVER.SCHEDULE.TYPE with the SOLVER keys of
    docs/reference.md#optimisation / #solver-keys."""
    solver = cfg.SOLVER
    warmup = {"warmup_factor": solver.WARMUP_FACTOR, "warmup_iters": solver.WARMUP_ITERS,
              "warmup_method": solver.WARMUP_METHOD}
    if solver.SCHEDULE.TYPE == "WarmupMultiStepLR":
        return WarmupMultiStepLR(optimizer, solver.STEPS, solver.GAMMA, **warmup)
    if solver.SCHEDULE.TYPE == "WarmupReduceLROnPlateau":
        schedule = solver.SCHEDULE
        return WarmupReduceLROnPlateau(optimizer, schedule.FACTOR, patience=schedule.PATIENCE,
                                       threshold=schedule.THRESHOLD, cooldown=schedule.COOLDOWN,
                                       max_decay_step=schedule.MAX_DECAY_STEP, **warmup)
    raise ValueError(f"SOLVER.SCHEDULE.TYPE must be one of {SCHEDULES}, got {solver.SCHEDULE.TYPE!r}")

"""An iteration-based training loop shared by the detector and relation trainers.

Each iteration: forward under torch.amp autocast (DTYPE) -> loss = sum of the loss dict -> backward ->
optional global grad-norm clipping over the trainable parameters (the gradient norms logged every
``grad_log_period`` iterations and at the run's first, as SGB's relation trainer logs them with
SOLVER.PRINT_GRAD_FREQ) -> optimizer step -> validation every
``val_period`` iterations (model in eval mode) -> scheduler step (with the validation metric for
WarmupReduceLROnPlateau) -> hooks (checkpoints, the SGB log line, TensorBoard).
"""
from __future__ import annotations

import datetime
import logging
import os
import resource
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from tqdm import tqdm

from ..solver import make_lr_scheduler, make_optimizer
from ..solver.lr_scheduler import WarmupReduceLROnPlateau
from ..utils.comm import all_ranks_true, is_main_process, reduce_dict_mean
from ..utils.logging import MetricLogger
from .checkpoint import Checkpointer

logger = logging.getLogger(__name__)

AMP_DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def amp_dtype_from_config(dtype_name: str) -> torch.dtype | None:
    """DTYPE -> the autocast dtype (None for float32); ValueError naming DTYPE for anything else."""
    if dtype_name not in AMP_DTYPES:
        raise ValueError(f"DTYPE must be one of {tuple(AMP_DTYPES)}, got {dtype_name!r}")
    return AMP_DTYPES[dtype_name]


def move_batch_to_device(images: ImageList, targets: Sequence[dict], device: torch.device
                         ) -> tuple[ImageList, list[dict]]:
    """The loader's ImageList and target dicts, every tensor on ``device``."""
    moved_targets = [{key: value.to(device) if torch.is_tensor(value) else value for key, value in target.items()}
                     for target in targets]
    return images.to(device), moved_targets


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on ``device`` or, on the CPU, the process's peak resident set, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024.0 / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class TrainingState:
    """What a training run keeps besides the model: SGD over the trainable parameters, the schedule, the
    float16 grad scaler (None otherwise) and the checkpointer of OUTPUT_DIR."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    grad_scaler: torch.amp.GradScaler | None
    checkpointer: Checkpointer


def make_training_state(cfg, model: nn.Module, device: torch.device) -> TrainingState:
    """SOLVER.* optimizer and schedule for ``model`` (already on ``device``), a GradScaler for DTYPE float16,
    and a Checkpointer writing OUTPUT_DIR on rank 0."""
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    grad_scaler = torch.amp.GradScaler(device.type) if amp_dtype_from_config(cfg.DTYPE) == torch.float16 else None
    checkpointer = Checkpointer(model, optimizer, scheduler, grad_scaler, cfg.OUTPUT_DIR,
                                save_to_disk=is_main_process(), seed=cfg.SEED)
    return TrainingState(optimizer, scheduler, grad_scaler, checkpointer)


class Hook:
    """Called by the Trainer; override what you need."""

    def before_train(self, trainer: "Trainer") -> None:
        pass

    def after_step(self, trainer: "Trainer") -> None:
        pass

    def after_train(self, trainer: "Trainer") -> None:
        pass

    def after_failure(self, trainer: "Trainer") -> None:
        """Training stopped with an exception, which propagates after every hook's after_failure."""


class Trainer:
    """Runs iterations ``start_iter + 1 .. max_iter`` over ``data_loader`` batches (images, targets, indices).

    model(images, targets) must return a dict of scalar losses. validator(model) -> metric (float) or None
    is called with the model in eval mode every ``val_period`` iterations (and before training with
    ``pre_validate`` on a fresh run). With a WarmupReduceLROnPlateau schedule, training stops once it has
    decayed MAX_DECAY_STEP times when ``stop_at_max_decay`` (SGB's relation trainer). ``best_metric``: the
    best validation metric of the run so far (restored from a checkpoint on resume), kept by
    ``BestCheckpointHook``.
    """

    def __init__(self, model: nn.Module, data_loader: Iterable, optimizer: torch.optim.Optimizer, scheduler,
                 device: torch.device, max_iter: int, start_iter: int = 0, amp_dtype: torch.dtype | None = None,
                 grad_scaler: torch.amp.GradScaler | None = None, grad_clip_norm: float | None = None,
                 validator: Callable[[nn.Module], float | None] | None = None, val_period: int = 0,
                 pre_validate: bool = False, stop_at_max_decay: bool = True, hooks: Sequence[Hook] = (),
                 best_metric: float | None = None, grad_log_period: int = 0) -> None:
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.device = device
        self.max_iter = max_iter
        self.start_iter = start_iter
        self.iteration = start_iter
        self.amp_dtype = amp_dtype
        self.grad_scaler = grad_scaler
        self.grad_clip_norm = grad_clip_norm
        self.grad_log_period = grad_log_period
        self.validator = validator
        self.val_period = val_period
        self.pre_validate = pre_validate
        self.stop_at_max_decay = stop_at_max_decay
        self.hooks = list(hooks)
        self.meters = MetricLogger()
        self.last_losses: dict[str, float] = {}
        self.validation_metric: float | None = None
        self.best_metric = best_metric
        self.stopped_early = False

    @property
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train(self) -> None:
        """Run the iterations (class docstring); on an exception, every hook's after_failure, then re-raise."""
        try:
            self._train()
        except BaseException:
            for hook in self.hooks:
                hook.after_failure(self)
            raise

    def _train(self) -> None:
        for hook in self.hooks:
            hook.before_train(self)
        if self.pre_validate and self.start_iter == 0 and self.validator is not None:
            logger.info("Validating before training (SOLVER.PRE_VAL)")
            self.validate()
        self.model.train()
        logger.info("Start training at iteration %d of %d", self.start_iter + 1, self.max_iter)
        end = time.perf_counter()
        for images, targets, _ in self.data_loader:
            if self.iteration >= self.max_iter:
                break
            data_time = time.perf_counter() - end
            self.iteration += 1
            self.run_step(images, targets)
            self.validation_metric = self._validate_if_due()
            self._step_scheduler(self.validation_metric)
            self.meters.update(time=time.perf_counter() - end, data=data_time)
            for hook in self.hooks:
                hook.after_step(self)
            if self._should_stop():
                logger.info("Trigger MAX_DECAY_STEP at iteration %d.", self.iteration)
                self.stopped_early = True
                break
            end = time.perf_counter()
        for hook in self.hooks:
            hook.after_train(self)

    def run_step(self, images: ImageList, targets: Sequence[dict]) -> None:
        """One optimisation step; records the (rank-averaged) losses in ``meters`` and ``last_losses``."""
        images, targets = move_batch_to_device(images, targets, self.device)
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            loss_dict = self.model(images, targets)
        total = sum(loss_dict.values())
        if not all_ranks_true(bool(torch.isfinite(total)), total.device):
            raise FloatingPointError(
                f"the loss is not finite at iteration {self.iteration} (on this rank: {total.item()}, "
                f"{ {name: value.item() for name, value in loss_dict.items()} }); training stopped, the "
                "checkpoints already written are intact")
        self.optimizer.zero_grad(set_to_none=True)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(total).backward()
            self.grad_scaler.unscale_(self.optimizer)
            self._clip_gradients()
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            total.backward()
            self._clip_gradients()
            self.optimizer.step()
        reduced = reduce_dict_mean({name: value.detach().float() for name, value in loss_dict.items()})
        self.last_losses = {name: value.item() for name, value in reduced.items()}
        self.meters.update(loss=sum(self.last_losses.values()), **self.last_losses)

    def _clip_gradients(self) -> None:
        """SGB's clip: scale all gradients by max_norm / (total_norm + 1e-6) when that is below 1. Before it,
        when due, log the norms (``gradient_norm_report``)."""
        if self.grad_log_period > 0 and (self.iteration == self.start_iter + 1
                                         or self.iteration % self.grad_log_period == 0):
            logger.info("%s", gradient_norm_report(
                [(name, p) for name, p in self.model.named_parameters() if p.requires_grad], self.grad_clip_norm))
        if self.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.trainable_parameters, self.grad_clip_norm)

    def validate(self) -> float | None:
        """Run the validator with the model in eval mode, then return the model to train mode."""
        self.model.eval()
        try:
            metric = self.validator(self.model)
        finally:
            self.model.train()
        if metric is not None:
            logger.info("Validation Result: %.4f", metric)
        return metric

    def _validate_if_due(self) -> float | None:
        if self.validator is None or self.val_period <= 0 or self.iteration % self.val_period:
            return None
        return self.validate()

    def _step_scheduler(self, metric: float | None) -> None:
        if isinstance(self.scheduler, WarmupReduceLROnPlateau):
            self.scheduler.step(metric)
        else:
            self.scheduler.step()

    def _should_stop(self) -> bool:
        return (self.stop_at_max_decay and isinstance(self.scheduler, WarmupReduceLROnPlateau)
                and self.scheduler.reached_max_decay)


def gradient_norm_report(named_parameters: Sequence[tuple[str, nn.Parameter]], max_norm: float | None) -> str:
    """SGB's gradient log: the total L2 norm of the gradients and the clip coefficient max_norm / (total +
    1e-6) (1 without clipping), then every parameter's gradient norm and shape, largest first."""
    norms = {name: float(p.grad.detach().float().norm()) for name, p in named_parameters if p.grad is not None}
    shapes = {name: tuple(p.shape) for name, p in named_parameters}
    total = sum(norm ** 2 for norm in norms.values()) ** 0.5
    coefficient = max_norm / (total + 1e-6) if max_norm else 1.0
    lines = [f"---Total norm {total:.5f} clip coef {coefficient:.5f}-----------------"]
    largest_first = sorted(norms.items(), key=lambda item: -item[1])
    lines += [f"{name:<50s}: {norm:.5f}, ({shapes[name]})" for name, norm in largest_first]
    lines.append("-------------------------------")
    return "\n".join(lines)


class CheckpointHook(Hook):
    """``model_%07d`` every ``period`` iterations and ``model_final`` when training ends (all ranks call;
    rank 0 writes); each holds the run's best validation metric so far ("best_metric"), so that a resumed
    run keeps comparing with it."""

    def __init__(self, checkpointer: Checkpointer, period: int) -> None:
        self.checkpointer = checkpointer
        self.period = period

    def after_step(self, trainer: Trainer) -> None:
        if self.period > 0 and trainer.iteration % self.period == 0:
            self.checkpointer.save(f"model_{trainer.iteration:07d}", trainer.iteration, best_metric=trainer.best_metric)

    def after_train(self, trainer: Trainer) -> None:
        if trainer.iteration > trainer.start_iter:
            self.checkpointer.save("model_final", trainer.iteration, best_metric=trainer.best_metric)


class LoggingHook(Hook):
    """SGB's log line every ``period`` iterations and at the last one, and TensorBoard scalars on rank 0:
    ``eta: 0:01:02  iter: 20  loss: median (global_avg)  ...  lr: 0.008000  max mem: 1234``."""

    def __init__(self, period: int = 20, tensorboard_dir: str = "") -> None:
        self.period = period
        self.tensorboard_dir = tensorboard_dir
        self.writer = None

    def before_train(self, trainer: Trainer) -> None:
        if self.tensorboard_dir and is_main_process():
            from torch.utils.tensorboard import SummaryWriter

            os.makedirs(self.tensorboard_dir, exist_ok=True)
            self.writer = SummaryWriter(self.tensorboard_dir)

    def after_step(self, trainer: Trainer) -> None:
        iteration, lr = trainer.iteration, trainer.optimizer.param_groups[0]["lr"]
        if self.writer is not None and trainer.validation_metric is not None:
            self.writer.add_scalar("val/metric", trainer.validation_metric, iteration)
        if iteration % self.period and iteration != trainer.max_iter:
            return
        eta_seconds = trainer.meters["time"].global_avg * (trainer.max_iter - iteration)
        logger.info("  ".join([
            f"eta: {datetime.timedelta(seconds=int(eta_seconds))}",
            f"iter: {iteration}",
            str(trainer.meters),
            f"lr: {lr:.6f}",
            f"max mem: {peak_memory_mb(trainer.device):.0f}",
        ]))
        if self.writer is not None:
            for name, value in trainer.last_losses.items():
                self.writer.add_scalar(f"train/{name}", value, iteration)
            self.writer.add_scalar("train/loss", sum(trainer.last_losses.values()), iteration)
            self.writer.add_scalar("train/lr", lr, iteration)
            self.writer.add_scalar("train/iteration_seconds", trainer.meters["time"].median, iteration)

    def after_train(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class BestCheckpointHook(Hook):
    """``model_best`` whenever a validation metric beats ``trainer.best_metric``, every earlier one of the
    run (all ranks call; rank 0 writes; ``last_checkpoint`` keeps naming the newest periodic checkpoint)."""

    def __init__(self, checkpointer: Checkpointer) -> None:
        self.checkpointer = checkpointer

    def after_step(self, trainer: Trainer) -> None:
        metric = trainer.validation_metric
        if metric is None or (trainer.best_metric is not None and metric <= trainer.best_metric):
            return
        trainer.best_metric = metric
        logger.info("New best validation metric %.4f at iteration %d", metric, trainer.iteration)
        self.checkpointer.save("model_best", trainer.iteration, point_last=False, best_metric=metric)


class ProgressBarHook(Hook):
    """A tqdm bar over the iterations with its ETA and the smoothed loss (rank 0 only)."""

    def __init__(self) -> None:
        self.bar = None

    def before_train(self, trainer: Trainer) -> None:
        if is_main_process():
            self.bar = tqdm(total=trainer.max_iter, initial=trainer.start_iter, desc="training", dynamic_ncols=True)

    def after_step(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{trainer.meters['loss'].median:.4f}", refresh=False)
            self.bar.update(1)

    def after_train(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def after_failure(self, trainer: Trainer) -> None:
        """End the bar's line, so that the error a tool prints next starts a line of its own."""
        self.after_train(trainer)

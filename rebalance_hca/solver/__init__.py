"""Optimizer with SGB's per-parameter LR convention and SGB's warmup schedules."""
from .lr_scheduler import WarmupMultiStepLR, WarmupReduceLROnPlateau, make_lr_scheduler
from .optimizer import make_optimizer

__all__ = ["WarmupMultiStepLR", "WarmupReduceLROnPlateau", "make_lr_scheduler", "make_optimizer"]

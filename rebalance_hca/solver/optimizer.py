"""SGD with SGB's per-parameter learning rates (docs/reference.md#optimisation, #deliberate-deviations).

Every trainable parameter gets its own group:
    lr = BASE_LR x (BIAS_LR_FACTOR if "bias" in its name else 1) x IMS_PER_BATCH
    weight_decay = WEIGHT_DECAY_BIAS if "bias" in its name else WEIGHT_DECAY
The IMS_PER_BATCH factor is SGB's ``rl_factor``: published command lines (e.g. BASE_LR 0.001 with
IMS_PER_BATCH 8 -> 0.008) keep their meaning.
"""
from __future__ import annotations

import torch
from torch import nn


def parameter_groups(model: nn.Module, base_lr: float, bias_lr_factor: float, weight_decay: float,
                     weight_decay_bias: float, lr_factor: float) -> list[dict]:
    """One optimizer group per parameter with requires_grad, in ``named_parameters`` order."""
    groups = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        is_bias = "bias" in name
        groups.append({
            "params": [parameter],
            "lr": base_lr * (bias_lr_factor if is_bias else 1.0) * lr_factor,
            "weight_decay": weight_decay_bias if is_bias else weight_decay,
        })
    return groups


def make_optimizer(cfg, model: nn.Module) -> torch.optim.SGD:
    """SGD (momentum SOLVER.MOMENTUM) over the trainable parameters of ``model`` with SGB's LR rule."""
    solver = cfg.SOLVER
    groups = parameter_groups(model, solver.BASE_LR, solver.BIAS_LR_FACTOR, solver.WEIGHT_DECAY,
                              solver.WEIGHT_DECAY_BIAS, lr_factor=float(solver.IMS_PER_BATCH))
    if not groups:
        raise ValueError("make_optimizer: the model has no parameter with requires_grad=True")
    return torch.optim.SGD(groups, lr=solver.BASE_LR, momentum=solver.MOMENTUM)

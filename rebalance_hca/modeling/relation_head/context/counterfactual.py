"""The counterfactual protocol of the contexts that SGB's causal TDE predictor runs on
(docs/reference.md#causal-tde), and the moving averages it keeps.

A context follows the protocol when
* it is built with ``effect_analysis: bool`` (MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS); when True it
  holds its "untreated" buffers (SGB's names, zero at init) and, in train mode only, updates each as a
  moving average of the feature it stands for (``update_moving_average``);
* ``forward(inputs: ContextInputs, counterfactual: bool = False) -> ObjectContext``; with
  ``counterfactual=True`` (eval mode, effect analysis on; callers run it without gradient) it reruns itself
  with SGB's "context average": the inputs that carry an object's own identity are replaced by their
  averages while the object context stays factual, and it returns that pass's object logits, labels and
  edge context. Whatever it derives from the factual inputs alone (an object order, a tree) is the same in
  both passes;
* ``averages_used_by_counterfactual() -> list[str]``: the names of the buffers its counterfactual pass reads
  in its mode, so that a model whose averages were never trained is refused (``untrained_averages``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

AVERAGE_RATIO = 0.0005
"""SGB's moving-average rate: m <- m (1 - r) + r · (mean of the batch's rows), no bias correction."""


def register_average(module: nn.Module, name: str, size: int) -> None:
    """A zero (size,) float32 buffer ``name`` on ``module`` (persistent: checkpoints carry it)."""
    module.register_buffer(name, torch.zeros(size))


def update_moving_average(average: Tensor, rows: Tensor) -> None:
    """average (F,) <- average · (1 - AVERAGE_RATIO) + AVERAGE_RATIO · rows.mean(0), in place and without
    gradient; rows (M, F). Nothing happens for M = 0 (SGB's mean would be NaN)."""
    if rows.shape[0] == 0:
        return
    with torch.no_grad():
        mean = rows.detach().float().mean(0)
        average.copy_(average * (1 - AVERAGE_RATIO) + AVERAGE_RATIO * mean)


def untrained_averages(module: nn.Module, names: list[str]) -> list[str]:
    """Those of the buffers ``names`` of ``module`` that are still exactly zero everywhere: never updated by
    training (a moving average of real features is never exactly zero after one update)."""
    buffers = dict(module.named_buffers())
    return [name for name in names if not bool(buffers[name].any())]

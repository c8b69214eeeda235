"""Relation (predicate) losses: RB's predicate reweighting loss (docs/reference.md#predicate-reweighting-loss)
and class-balanced CE (docs/reference.md#class-balanced-weights).

PredicateReweightingLoss (the "category discriminating" loss RB trains with in both stages). For a batch
of N sampled pairs with logits z (N, P) and labels y (N,), background included:

    n_c     = #{n : y_n = c} + 1e-8                      per-batch count of every class c
    r[i, j] = clamp(n_j / n_i, 0, max_count_ratio)
    w[i, j] = log(1 + r^k),  k = mitigation    if r < 1 and corr[i, j] <= threshold
                             k = 0 (log 2)     if r < 1 and corr[i, j] >  threshold
                             k = 0 (log 2)     if r >= 1 and corr[i, j] <= threshold
                             k = compensation  if r >= 1 and corr[i, j] >  threshold
    L = -(1/N) Σ_n [ z[n, y_n] - log Σ_j w[y_n, j] · exp(z[n, j]) ]

with corr the predicate correlation of the confusion matrix (``confusion.predicate_correlation``; all
zeros without one, so that only the distribution term acts). Consequences:

* the diagonal weight w[i, i] is always log 2 (r = 1), so a sample's loss is bounded below by
  log(log 2) ≈ -0.367, not 0: the loss can be negative;
* a class j absent from the batch (n_j = 1e-8) that is not strongly correlated with y gets
  w ≈ (1e-8 / n_y)^1.5 and effectively drops out of the partition function;
* for a sample of a frequent label, rarer classes get w < log 2 (their logits are pushed down less);
  for a sample of a rare label, the more frequent classes it is often mistaken for (corr > threshold)
  get w > log 2 (their logits are pushed down more).

ClassBalancedCrossEntropy: weighted cross-entropy with the effective-number weights of
docs/reference.md#class-balanced-weights, which
RB computes but never applies; offered here as a separate, optional loss.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .confusion import predicate_correlation

__all__ = ["ClassBalancedCrossEntropy", "PredicateReweightingLoss", "class_balanced_weights"]

_COUNT_EPSILON = 1e-8   # added to every per-batch class count (docs/reference.md#predicate-reweighting-loss)


class PredicateReweightingLoss(nn.Module):
    """RB's reweighted softmax cross-entropy over relation logits (docs/reference.md#predicate-reweighting-loss;
    formula in the module docstring).

    confusion_matrix: (P, P) counts, row = GT predicate, column = predicted, or None (correlation all
    zeros; P is then taken from the logits). The correlation is a non-persistent float32 buffer
    ``correlation`` (P, P), so ``.to(device)`` moves it and checkpoints do not hold it.
    Call: logits (N, P) float (any float dtype; computed in float32, autocast off), labels (N,) int64 in
    [0, P) -> scalar float32 loss. An empty batch gives 0 with a graph to ``logits``.
    """

    correlation: Optional[torch.Tensor]

    def __init__(self, confusion_matrix: Optional[np.ndarray], *, correlation_threshold: float = 0.9,
                 mitigation_exponent: float = 1.5, compensation_exponent: float = 2.0,
                 max_count_ratio: float = 1000.0) -> None:
        super().__init__()
        if max_count_ratio <= 0:
            raise ValueError(f"PredicateReweightingLoss: max_count_ratio must be > 0, got {max_count_ratio}")
        self.correlation_threshold = float(correlation_threshold)
        self.mitigation_exponent = float(mitigation_exponent)
        self.compensation_exponent = float(compensation_exponent)
        self.max_count_ratio = float(max_count_ratio)
        correlation = None
        if confusion_matrix is not None:
            correlation = torch.as_tensor(predicate_correlation(confusion_matrix), dtype=torch.float32)
        self.register_buffer("correlation", correlation, persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """logits (N, P), labels (N,) int64 -> scalar float32 loss (mean over the N samples)."""
        num_classes = self._check_inputs(logits, labels)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            if labels.numel() == 0:
                return logits.sum() * 0.0
            log_weights = self.log_weights(labels, num_classes)[labels]                    # (N, P)
            partition = torch.logsumexp(logits + log_weights, dim=1)                       # (N,)
            label_logits = logits.gather(1, labels[:, None]).squeeze(1)                    # (N,)
            return (partition - label_logits).mean()

    def log_weights(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """log w, float32 (P, P), for the batch labels (N,): row i is the weight row of samples labelled i.

        w = log(1 + r^k) = softplus(k · log r), so log w = log(softplus(k · log r)) stays finite for the
        tiny ratios of absent classes (r >= 1e-8 / N, so k · log r >= -50 even for N = 10^6, far from
        float32 underflow).
        """
        counts = torch.bincount(labels, minlength=num_classes).float() + _COUNT_EPSILON    # (P,)
        if counts.numel() != num_classes:
            raise ValueError(f"PredicateReweightingLoss: labels must lie in [0, {num_classes}), "
                             f"found {counts.numel() - 1}")
        log_counts = counts.log()
        log_ratio = (log_counts[None, :] - log_counts[:, None]).clamp(max=math.log(self.max_count_ratio))
        exponent = self._exponents(log_ratio < 0, self._correlation(num_classes, labels.device))
        return torch.log(F.softplus(exponent * log_ratio))

    def _exponents(self, rarer: torch.Tensor, correlation: torch.Tensor) -> torch.Tensor:
        """The exponent k (P, P) of each weight, from ``rarer`` (r < 1) and the correlation (P, P)."""
        correlated = correlation > self.correlation_threshold
        zero = torch.zeros_like(correlation)
        mitigation = torch.full_like(correlation, self.mitigation_exponent)
        compensation = torch.full_like(correlation, self.compensation_exponent)
        return torch.where(rarer, torch.where(correlated, zero, mitigation),
                           torch.where(correlated, compensation, zero))

    def _correlation(self, num_classes: int, device: torch.device) -> torch.Tensor:
        """The (P, P) correlation on ``device``: the buffer, or zeros without a confusion matrix."""
        if self.correlation is None:
            return torch.zeros(num_classes, num_classes, device=device)
        return self.correlation.to(device)

    def _check_inputs(self, logits: torch.Tensor, labels: torch.Tensor) -> int:
        """Check the shapes of logits (N, P) and labels (N,); returns P."""
        if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0]:
            raise ValueError(f"PredicateReweightingLoss: expected logits (N, P) and labels (N,), got "
                             f"{tuple(logits.shape)} and {tuple(labels.shape)}")
        num_classes = logits.shape[1]
        if self.correlation is not None and self.correlation.shape[0] != num_classes:
            raise ValueError(f"PredicateReweightingLoss: logits have {num_classes} classes but the confusion "
                             f"matrix is {tuple(self.correlation.shape)}")
        return num_classes

    def extra_repr(self) -> str:
        return (f"correlation_threshold={self.correlation_threshold}, mitigation_exponent="
                f"{self.mitigation_exponent}, compensation_exponent={self.compensation_exponent}, "
                f"max_count_ratio={self.max_count_ratio}, confusion_matrix={self.correlation is not None}")


def class_balanced_weights(predicate_counts: Sequence[float] | np.ndarray, beta: float = 0.99999) -> np.ndarray:
    """Effective-number class weights, float64 (P,), from ``predicate_counts`` (P,)
    (docs/reference.md#class-balanced-weights).

    predicate_counts[k] is the training count of predicate k for k >= 1; entry 0 (background) is ignored
    and replaced by 2 · Σ counts[1:]. Class c gets (1 - beta) / (1 - beta^count_c), and the weights are
    scaled to sum to P. A zero count gets the weight of count 1 (= 1), so it does not divide by zero.
    """
    counts = np.asarray(predicate_counts, dtype=np.float64).copy()
    if counts.ndim != 1 or counts.size < 2 or (counts[1:] < 0).any() or not np.isfinite(counts).all():
        raise ValueError(f"class_balanced_weights: expected (P,) finite counts >= 0 with P >= 2, got {counts}")
    if not 0.0 < beta < 1.0:
        raise ValueError(f"class_balanced_weights: beta must lie in (0, 1), got {beta}")
    counts[0] = 2.0 * counts[1:].sum()
    counts = np.where(counts == 0, 1.0, counts)
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return weights / weights.sum() * len(weights)


class ClassBalancedCrossEntropy(nn.Module):
    """Cross-entropy weighted by ``class_balanced_weights(predicate_counts, beta)``
    (docs/reference.md#class-balanced-weights).

    The weights are a float32 buffer ``weight`` (P,). Call: logits (N, P), labels (N,) int64 -> scalar
    float32 loss, PyTorch's weighted mean Σ_n weight[y_n]·CE_n / Σ_n weight[y_n] (F.cross_entropy with
    ``weight``; computed in float32, autocast off). An empty batch gives 0 with a graph to ``logits``.
    """

    weight: torch.Tensor

    def __init__(self, predicate_counts: Sequence[float] | np.ndarray, beta: float = 0.99999) -> None:
        super().__init__()
        weights = class_balanced_weights(predicate_counts, beta)
        self.register_buffer("weight", torch.as_tensor(weights, dtype=torch.float32), persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """logits (N, P), labels (N,) int64 -> scalar float32 loss."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            if labels.numel() == 0:
                return logits.sum() * 0.0
            return F.cross_entropy(logits, labels, weight=self.weight.to(logits.device))

"""Relation losses (docs/reference.md#predicate-reweighting-loss, #class-balanced-weights),
checked against values worked out by hand."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rebalance_hca.modeling.relation_head.loss import (ClassBalancedCrossEntropy, PredicateReweightingLoss,
                                                       class_balanced_weights)

SHARED_DICTS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "vg", "VG-SGG-dicts-with-attri.json")

LOG2 = math.log(2.0)
FLOOR = math.log(math.log(2.0))    # ≈ -0.3665

# Confusion counts whose correlation is > 0.9 for the pairs (1, 2) and (2, 1) only (off the diagonal):
# P rows 1 and 2 = [0, 1/2, 1/2], so corr[1, 2] = corr[2, 1] = 0.5 / (0.5 + 1e-4) ≈ 0.9998; row 0 and
# column 0 are masked, so corr[0, j] = corr[j, 0] = 0 for j > 0.
CORRELATED_1_2 = np.array([[0.0, 0.0, 0.0],
                           [0.0, 10.0, 10.0],
                           [0.0, 10.0, 10.0]])

# Batch of N = 4 with labels [0, 1, 2, 2]: n = [1, 1, 2], r[i, j] = n_j / n_i = [[1, 1, 2], [1, 1, 2], [.5, .5, 1]].
LABELS = torch.tensor([0, 1, 2, 2])
LOGITS = torch.tensor([[1.0, 0.0, 0.0],
                       [0.0, 2.0, 1.0],
                       [0.0, 1.0, 3.0],
                       [1.0, 0.0, 0.0]])
MITIGATED_HALF = math.log(1.0 + 0.5 ** 1.5)   # log(1 + 0.35355339) = 0.30273...


def weights(loss: PredicateReweightingLoss, labels: torch.Tensor, num_classes: int = 3) -> torch.Tensor:
    return loss.log_weights(labels, num_classes).exp()


def test_each_weight_branch_with_a_confusion_matrix():
    loss = PredicateReweightingLoss(CORRELATED_1_2)
    expected = torch.tensor([
        # j = 1, 2: r >= 1, corr <= 0.9 -> log 2; diagonal: r = 1, corr > 0.9 -> log(1 + 1^2) = log 2
        [LOG2, LOG2, LOG2],
        # j = 0: r = 1, corr 0 -> log 2; j = 2: r = 2, corr > 0.9 -> log(1 + 2^2) = log 5
        [LOG2, LOG2, math.log(1.0 + 2.0 ** 2)],
        # j = 0: r = .5, corr 0 -> log(1 + .5^1.5); j = 1: r = .5, corr > 0.9 -> log 2
        [MITIGATED_HALF, LOG2, LOG2],
    ])
    torch.testing.assert_close(weights(loss, LABELS), expected, rtol=1e-6, atol=0)


def test_loss_value_by_hand():
    loss = PredicateReweightingLoss(CORRELATED_1_2)(LOGITS, LABELS)
    e = math.e
    per_sample = [
        -1.0 + math.log(LOG2 * e + LOG2 + LOG2),                               # y = 0, z = [1, 0, 0]
        -2.0 + math.log(LOG2 * 1.0 + LOG2 * e ** 2 + math.log(5.0) * e),       # y = 1, z = [0, 2, 1]
        -3.0 + math.log(MITIGATED_HALF * 1.0 + LOG2 * e + LOG2 * e ** 3),      # y = 2, z = [0, 1, 3]
        -0.0 + math.log(MITIGATED_HALF * e + LOG2 * 1.0 + LOG2 * 1.0),         # y = 2, z = [1, 0, 0]
    ]
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(sum(per_sample) / 4, rel=1e-6)


def test_no_confusion_matrix_means_zero_correlation():
    without = PredicateReweightingLoss(None)
    expected = torch.tensor([
        [LOG2, LOG2, LOG2],                  # r >= 1 everywhere in row 0
        [LOG2, LOG2, LOG2],                  # r[1, 2] = 2 but corr = 0 -> log 2, not log 5
        [MITIGATED_HALF, MITIGATED_HALF, LOG2],   # r = .5 -> log(1 + .5^1.5), also for j = 1
    ])
    torch.testing.assert_close(weights(without, LABELS), expected, rtol=1e-6, atol=0)
    # an all-zero confusion matrix has corr = 0 off the diagonal, and the diagonal weight is log 2 anyway
    zeros = PredicateReweightingLoss(np.zeros((3, 3)))
    assert without(LOGITS, LABELS).item() == pytest.approx(zeros(LOGITS, LABELS).item(), rel=1e-7)
    assert without.correlation is None


@pytest.mark.parametrize("count_of_1_as_2, expected", [
    (9.0, LOG2),                          # corr[1, 2] = (9/19) / (10/19 + 1e-4) = 0.89983 <= 0.9
    (9.1, math.log(1.0 + 2.0 ** 2)),      # corr[1, 2] = (9.1/19.1) / (10/19.1 + 1e-4) = 0.90983 > 0.9
])
def test_correlation_above_threshold_switches_the_branch(count_of_1_as_2, expected):
    confusion = np.array([[0.0, 0.0, 0.0], [0.0, 10.0, count_of_1_as_2], [0.0, 0.0, 10.0]])
    loss = PredicateReweightingLoss(confusion)
    assert weights(loss, LABELS)[1, 2].item() == pytest.approx(expected, rel=1e-6)   # r[1, 2] = 2


def test_threshold_and_exponents_are_arguments():
    loss = PredicateReweightingLoss(CORRELATED_1_2, correlation_threshold=1.0, mitigation_exponent=1.0)
    # corr <= 1.0 everywhere now: w[1, 2] = log 2 (r = 2), w[2, 1] = log(1 + 0.5^1) (r = .5)
    assert weights(loss, LABELS)[1, 2].item() == pytest.approx(LOG2, rel=1e-6)
    assert weights(loss, LABELS)[2, 1].item() == pytest.approx(math.log(1.5), rel=1e-6)
    loss = PredicateReweightingLoss(CORRELATED_1_2, compensation_exponent=3.0)
    assert weights(loss, LABELS)[1, 2].item() == pytest.approx(math.log(1.0 + 2.0 ** 3), rel=1e-6)


def test_max_count_ratio_clamp_and_absent_classes():
    labels = torch.tensor([1, 2, 2, 2, 2, 2])   # n = [1e-8, 1, 5]: r[1, 2] = 5, r[1, 0] = 1e-8
    unclamped = weights(PredicateReweightingLoss(CORRELATED_1_2), labels)
    clamped = weights(PredicateReweightingLoss(CORRELATED_1_2, max_count_ratio=3.0), labels)
    assert unclamped[1, 2].item() == pytest.approx(math.log(1.0 + 5.0 ** 2), rel=1e-6)   # log 26
    assert clamped[1, 2].item() == pytest.approx(math.log(1.0 + 3.0 ** 2), rel=1e-6)     # log 10
    # absent class 0 in row 1: log(1 + (1e-8 / 1)^1.5) ≈ 1e-12, it drops out of the partition function
    assert unclamped[1, 0].item() == pytest.approx(1e-12, rel=1e-4)
    # row 0 (absent label): r[0, j] = n_j / 1e-8 is clamped to 1000 -> log 2 (corr 0)
    assert unclamped[0, 1].item() == pytest.approx(LOG2, rel=1e-6)


def test_uniform_batch_is_cross_entropy_plus_log_log_2():
    """Equal class counts make r = 1 everywhere, so every weight is log 2 whatever the correlation."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=generator)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    for confusion in (None, CORRELATED_1_2):
        loss = PredicateReweightingLoss(confusion)(logits, labels)
        assert loss.item() == pytest.approx(F.cross_entropy(logits, labels).item() + FLOOR, rel=1e-6)


def test_negative_floor_log_log_2():
    logits = torch.tensor([[30.0, 0.0, 0.0], [0.0, 30.0, 0.0], [0.0, 0.0, 30.0], [30.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 2, 0])
    loss = PredicateReweightingLoss(CORRELATED_1_2)(logits, labels)
    # -30 + log(log 2 · e^30 + (other weights) · e^0) -> log(log 2) = -0.36651
    assert loss.item() < 0
    assert loss.item() == pytest.approx(FLOOR, abs=1e-6)


def test_gradient_is_finite_even_for_extreme_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0], [0.0, 50.0, -50.0], [-1e4, 0.0, 1e4]], requires_grad=True)
    labels = torch.tensor([1, 1, 2])   # class 0 absent: its weight is ~1e-12
    loss = PredicateReweightingLoss(CORRELATED_1_2)(logits, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # each row of d loss / d z is (softmax of z + log w) - onehot(y), divided by N: rows sum to 0
    torch.testing.assert_close(logits.grad.sum(dim=1), torch.zeros(3), atol=1e-6, rtol=0)


def test_bfloat16_logits_and_autocast_give_a_float32_loss():
    module = PredicateReweightingLoss(CORRELATED_1_2)
    logits = LOGITS.to(torch.bfloat16).requires_grad_()
    loss = module(logits, LABELS)
    loss.backward()
    assert loss.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    # these logits are exact in bfloat16, so the value is the float32 one
    assert loss.item() == pytest.approx(module(LOGITS, LABELS).item(), rel=1e-7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_loss = module(LOGITS @ torch.eye(3), LABELS)
    assert autocast_loss.dtype == torch.float32


def test_empty_batch_is_zero_with_a_graph():
    logits = torch.zeros(0, 3, requires_grad=True)
    loss = PredicateReweightingLoss(CORRELATED_1_2)(logits, torch.zeros(0, dtype=torch.int64))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.shape == (0, 3)


def test_correlation_is_a_non_persistent_buffer():
    module = PredicateReweightingLoss(CORRELATED_1_2)
    assert "correlation" in dict(module.named_buffers()) and module.correlation.dtype == torch.float32
    assert module.state_dict() == {}
    assert module.correlation[1, 2].item() == pytest.approx(0.5 / 0.5001, rel=1e-6)


def test_bad_inputs():
    module = PredicateReweightingLoss(CORRELATED_1_2)
    with pytest.raises(ValueError, match="4 classes"):
        module(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        module(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"\(N, P\)"):
        module(torch.zeros(2, 3), torch.tensor([0, 1, 2]))


def test_class_balanced_weights_by_hand():
    # beta = 0.5, counts [-, 1, 3]: background count 2 · (1 + 3) = 8
    #   bg: 0.5 / (1 - 0.5^8) = 0.50196078, k1: 0.5 / (1 - 0.5) = 1, k2: 0.5 / (1 - 0.125) = 0.57142857
    raw = np.array([0.5 / 0.99609375, 1.0, 0.5 / 0.875])
    weights = class_balanced_weights([123, 1, 3], beta=0.5)   # entry 0 is ignored
    np.testing.assert_allclose(weights, raw * 3 / raw.sum(), rtol=1e-12)
    assert weights.sum() == pytest.approx(3.0)


def test_class_balanced_zero_count_gets_the_weight_of_count_one():
    # counts [-, 0, 3]: bg count 6 -> 0.5 / (1 - 1/64); k1 as count 1 -> 1; k2 -> 0.57142857
    raw = np.array([0.5 / 0.984375, 1.0, 0.5 / 0.875])
    np.testing.assert_allclose(class_balanced_weights([0, 0, 3], beta=0.5), raw * 3 / raw.sum(), rtol=1e-12)
    assert np.isfinite(class_balanced_weights([0, 0, 0], beta=0.5)).all()


def test_class_balanced_cross_entropy_is_the_weighted_mean():
    counts = [0, 1, 3]
    module = ClassBalancedCrossEntropy(counts, beta=0.5)
    w = class_balanced_weights(counts, beta=0.5)
    logits = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    labels = torch.tensor([1, 2])
    ce_0 = -1.0 + math.log(1.0 + math.e + 1.0)          # y = 1, z = [0, 1, 0]
    ce_1 = -0.0 + math.log(math.e ** 2 + 1.0 + 1.0)     # y = 2, z = [2, 0, 0]
    expected = (w[1] * ce_0 + w[2] * ce_1) / (w[1] + w[2])
    loss = module(logits.to(torch.bfloat16), labels)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(expected, rel=1e-6)
    empty = torch.zeros(0, 3, requires_grad=True)
    assert module(empty, torch.zeros(0, dtype=torch.int64)).item() == 0.0


@pytest.mark.skipif(not os.path.isfile(SHARED_DICTS),
                    reason="needs the real VG150 vocabulary VG-SGG-dicts-with-attri.json (its predicate counts) in "
                           "../shared/vg (beside this checkout); it is absent")
def test_class_balanced_weights_on_vg150_predicate_counts():
    """Class-balanced weights on VG150's counts (docs/reference.md#class-balanced-weights):
    0.054 and 2.43 are the weights of
    "of" (146,339) and "walking in" (1,740, the rarest predicate); with these counts "on" (712,409) is
    ≈ 0.0419 and "flying in" (1,973) ≈ 2.141."""
    with open(SHARED_DICTS) as stream:
        dicts = json.load(stream)
    names = sorted(dicts["predicate_to_idx"], key=dicts["predicate_to_idx"].get)   # ids 1..50, alphabetical
    counts = [0] + [dicts["predicate_count"][name] for name in names]
    weights = dict(zip(["__background__"] + names, class_balanced_weights(counts)))
    assert len(weights) == 51 and sum(weights.values()) == pytest.approx(51.0)
    assert weights["__background__"] == pytest.approx(0.042, abs=5e-4)
    assert weights["on"] == pytest.approx(0.0419, abs=5e-5)
    assert weights["of"] == pytest.approx(0.054, abs=5e-4)
    assert weights["flying in"] == pytest.approx(2.141, abs=1e-3)
    assert weights["walking in"] == pytest.approx(2.43, abs=1e-2)
    assert max(weights, key=weights.get) == "walking in"

"""SGB's per-parameter learning rates and the two warmup schedules (docs/reference.md#optimisation),
values worked out by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from rebalance_hca.config import load_config
from rebalance_hca.solver import WarmupMultiStepLR, WarmupReduceLROnPlateau, make_lr_scheduler, make_optimizer


def _model() -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    model[1].weight.requires_grad_(False)
    return model


def test_optimizer_groups_follow_sgb_lr_convention():
    cfg = load_config(None, ["SOLVER.BASE_LR", "0.001", "SOLVER.BIAS_LR_FACTOR", "2", "SOLVER.IMS_PER_BATCH", "8",
                             "SOLVER.WEIGHT_DECAY", "0.0001", "SOLVER.WEIGHT_DECAY_BIAS", "0.0"])
    optimizer = make_optimizer(cfg, _model())
    assert isinstance(optimizer, torch.optim.SGD)
    groups = [(g["lr"], g["weight_decay"], g["params"][0].shape) for g in optimizer.param_groups]
    # 0.weight: 0.001 x 8; biases: 0.001 x 2 x 8 and no decay; 1.weight is frozen and absent
    assert groups == [(pytest.approx(0.008), 0.0001, (3, 2)), (pytest.approx(0.016), 0.0, (3,)),
                      (pytest.approx(0.016), 0.0, (1,))]
    assert all(g["momentum"] == 0.9 for g in optimizer.param_groups)


def test_optimizer_needs_a_trainable_parameter():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        make_optimizer(load_config(), model)


def _optimizer(lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def test_warmup_multistep_lr_values():
    optimizer = _optimizer(0.1)
    scheduler = WarmupMultiStepLR(optimizer, (8, 10), gamma=0.1, warmup_factor=0.1, warmup_iters=5)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.01, 0.028, 0.046, 0.064, 0.082, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert lrs == pytest.approx(expected)


def test_warmup_multistep_constant_warmup_and_bad_values():
    optimizer = _optimizer(0.1)
    WarmupMultiStepLR(optimizer, (3,), warmup_factor=0.5, warmup_iters=2, warmup_method="constant")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="STEPS"):
        WarmupMultiStepLR(_optimizer(), (10, 5))
    with pytest.raises(ValueError, match="WARMUP_METHOD"):
        WarmupMultiStepLR(_optimizer(), (10,), warmup_method="cosine")


def test_reduce_on_plateau_decays_after_patience_bad_validations():
    optimizer = _optimizer(1.0)
    scheduler = WarmupReduceLROnPlateau(optimizer, factor=0.1, warmup_iters=0, patience=2, threshold=0.001,
                                        cooldown=0, max_decay_step=2)
    lrs = []
    for metric in [None, None, 0.5, 0.5005, None, 0.4, 0.6, 0.6, 0.6]:
        scheduler.step(metric)
        lrs.append(optimizer.param_groups[0]["lr"])
    # 0.5005 is not above 0.5 + 0.001 (bad 1); 0.4 (bad 2) decays; 0.6 best, then two bad -> second decay
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.01])
    assert scheduler.stage_count == 2 and scheduler.reached_max_decay


def test_reduce_on_plateau_cooldown_absorbs_one_bad_validation():
    optimizer = _optimizer(1.0)
    scheduler = WarmupReduceLROnPlateau(optimizer, factor=0.5, warmup_iters=0, patience=2, threshold=0.0,
                                        cooldown=1)
    stages = []
    for metric in [0.5, 0.4, 0.4, 0.3, 0.3, 0.3]:
        scheduler.step(metric)
        stages.append(scheduler.stage_count)
    assert stages == [0, 0, 1, 1, 1, 2]


def test_reduce_on_plateau_warmup():
    optimizer = _optimizer(1.0)
    scheduler = WarmupReduceLROnPlateau(optimizer, factor=0.1, warmup_factor=0.1, warmup_iters=500)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    for _ in range(250):
        scheduler.step(None)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 + 0.5)


@pytest.mark.parametrize("schedule", ["WarmupMultiStepLR", "WarmupReduceLROnPlateau"])
def test_scheduler_state_dict_round_trip(schedule):
    cfg = load_config(None, ["SOLVER.SCHEDULE.TYPE", schedule, "SOLVER.WARMUP_ITERS", "4", "SOLVER.STEPS", "(6,)",
                             "SOLVER.SCHEDULE.PATIENCE", "1", "SOLVER.SCHEDULE.COOLDOWN", "0"])
    model = nn.Linear(2, 1)

    def run(scheduler, metrics):
        lrs = []
        for metric in metrics:
            optimizer.step()
            scheduler.step(metric) if isinstance(scheduler, WarmupReduceLROnPlateau) else scheduler.step()
            lrs.append(optimizer.param_groups[0]["lr"])
        return lrs

    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    run(scheduler, [None, 0.5, None])
    saved = (optimizer.state_dict(), scheduler.state_dict())
    uninterrupted = run(scheduler, [0.4, None, None, 0.3, None])

    optimizer = make_optimizer(cfg, model)
    resumed = make_lr_scheduler(cfg, optimizer)
    optimizer.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    assert run(resumed, [0.4, None, None, 0.3, None]) == pytest.approx(uninterrupted)


def test_unknown_schedule_is_named():
    cfg = load_config(None, ["SOLVER.SCHEDULE.TYPE", "Cosine"])
    with pytest.raises(ValueError, match="SOLVER.SCHEDULE.TYPE"):
        make_lr_scheduler(cfg, _optimizer())

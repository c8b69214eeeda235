"""Checkpoints: atomic save, round trip, real resume from OUTPUT_DIR, and clear errors for bad files."""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from detector_testing import random_images, random_targets, tiny_config
from rebalance_hca.engine import checkpoint
from rebalance_hca.engine.checkpoint import LAST_CHECKPOINT_FILE, Checkpointer
from rebalance_hca.engine.trainer import CheckpointHook, Trainer
from rebalance_hca.modeling.detector import build_detector
from rebalance_hca.modeling.weights import load_model_weights
from rebalance_hca.solver import WarmupMultiStepLR, make_lr_scheduler, make_optimizer
from rebalance_hca.utils.state_dict import StateDictMismatchError


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = WarmupMultiStepLR(optimizer, (3,), warmup_iters=2)
    return model, optimizer, scheduler


def _train_steps(model, optimizer, scheduler, steps: int) -> None:
    for _ in range(steps):
        loss = model(torch.randn(5, 3)).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_save_and_resume_round_trip(tmp_path):
    model, optimizer, scheduler = _setup()
    _train_steps(model, optimizer, scheduler, 4)
    path = Checkpointer(model, optimizer, scheduler, save_dir=str(tmp_path)).save("model_0000004", 4)
    expected_next_random = torch.rand(3)
    assert path == str(tmp_path / "model_0000004.pth")
    assert (tmp_path / LAST_CHECKPOINT_FILE).read_text() == "model_0000004.pth"
    assert sorted(os.listdir(tmp_path)) == [LAST_CHECKPOINT_FILE, "model_0000004.pth"]  # no temporary left

    fresh_model, fresh_optimizer, fresh_scheduler = _setup(seed=1)
    extra = Checkpointer(fresh_model, fresh_optimizer, fresh_scheduler, save_dir=str(tmp_path)).resume_or_load()
    assert extra["iteration"] == 4
    for saved, restored in zip(model.state_dict().values(), fresh_model.state_dict().values()):
        assert torch.equal(saved, restored)
    assert fresh_scheduler.last_epoch == 4 and fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    momentum = optimizer.state[next(iter(model.parameters()))]["momentum_buffer"]
    assert torch.equal(fresh_optimizer.state[next(iter(fresh_model.parameters()))]["momentum_buffer"], momentum)
    assert torch.equal(torch.rand(3), expected_next_random)  # RNG restored to the moment of saving


def _draws() -> tuple[list[float], list[float], float]:
    """The next torch, numpy and python values of the global generators."""
    return torch.rand(2).tolist(), np.random.random(2).tolist(), random.random()


def _resume_as(tmp_path, monkeypatch, rank: int, world_size: int, seed: int = 20):
    """Resume OUTPUT_DIR ``tmp_path`` as ``rank`` of ``world_size`` processes; the values it then draws."""
    monkeypatch.setattr(checkpoint, "get_rank", lambda: rank)
    monkeypatch.setattr(checkpoint, "get_world_size", lambda: world_size)
    model, optimizer, scheduler = _setup()
    Checkpointer(model, optimizer, scheduler, save_dir=str(tmp_path), seed=seed).resume_or_load()
    return _draws()


def test_resume_on_another_world_size_reseeds_each_rank(tmp_path, monkeypatch, caplog):
    model, optimizer, scheduler = _setup()
    Checkpointer(model, optimizer, scheduler, save_dir=str(tmp_path)).save("model_0000004", 4)  # 1 process
    monkeypatch.setattr(logging.getLogger("rebalance_hca"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="rebalance_hca"):
        rank0, rank1 = (_resume_as(tmp_path, monkeypatch, rank, world_size=2) for rank in (0, 1))
    assert all(value0 != value1 for value0, value1 in zip(rank0, rank1))    # torch, numpy and python differ
    assert rank0 == _resume_as(tmp_path, monkeypatch, 0, world_size=2)          # reseeded from (SEED, rank, it)
    assert rank0 != _resume_as(tmp_path, monkeypatch, 0, world_size=2, seed=21)
    assert "saved by 1 process(es), this run has 2" in caplog.text and "reseeds" in caplog.text


def test_resume_on_the_same_world_size_restores_each_ranks_own_state(tmp_path, monkeypatch):
    states, next_draws = [], []
    for rank in range(2):
        torch.manual_seed(rank)
        np.random.seed(rank)
        random.seed(rank)
        states.append(checkpoint.capture_rng_state())
        next_draws.append(_draws())
    model, optimizer, scheduler = _setup()
    with monkeypatch.context() as patch:
        patch.setattr(checkpoint, "all_gather", lambda state: states)   # what 2 processes would save
        Checkpointer(model, optimizer, scheduler, save_dir=str(tmp_path)).save("model_0000004", 4)
    assert [_resume_as(tmp_path, monkeypatch, rank, world_size=2) for rank in (1, 0)] == next_draws[::-1]


def test_rng_capture_leaves_cuda_alone_until_it_is_initialised(monkeypatch):
    def every_device(*args):
        raise AssertionError("get_rng_state_all opens a context on every GPU")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", every_device)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert "cuda" not in checkpoint.capture_rng_state()
    current_device_state = torch.arange(4, dtype=torch.uint8)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": current_device_state)
    assert torch.equal(checkpoint.capture_rng_state()["cuda"], current_device_state)


def test_resume_wins_over_model_weight(tmp_path):
    model, optimizer, scheduler = _setup()
    Checkpointer(model, optimizer, scheduler, save_dir=str(tmp_path / "run")).save("model_0000007", 7)
    other, _, _ = _setup(seed=3)
    weight_file = tmp_path / "other.pth"
    torch.save({"model": other.state_dict()}, weight_file)

    fresh, fresh_optimizer, fresh_scheduler = _setup(seed=1)
    checkpointer = Checkpointer(fresh, fresh_optimizer, fresh_scheduler, save_dir=str(tmp_path / "run"))
    assert checkpointer.resume_or_load(str(weight_file))["iteration"] == 7
    assert torch.equal(fresh[0].weight, model[0].weight)

    fresh, fresh_optimizer, fresh_scheduler = _setup(seed=1)
    checkpointer = Checkpointer(fresh, fresh_optimizer, fresh_scheduler, save_dir=str(tmp_path / "empty_run"))
    assert checkpointer.resume_or_load(str(weight_file))["iteration"] == 0
    assert torch.equal(fresh[0].weight, other[0].weight)


def test_missing_files_are_errors_never_skipped(tmp_path):
    model, optimizer, scheduler = _setup()
    checkpointer = Checkpointer(model, optimizer, scheduler, save_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        checkpointer.resume_or_load(str(tmp_path / "missing.pth"))
    checkpointer.save("model_0000002", 2)
    os.remove(tmp_path / "model_0000002.pth")
    with pytest.raises(FileNotFoundError, match="model_0000002.pth"):
        checkpointer.resume_or_load()


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path):
    model, optimizer, scheduler = _setup()
    checkpointer = Checkpointer(model, optimizer, scheduler, save_dir=str(tmp_path))
    checkpointer.save("model_final", 2)
    before = (tmp_path / "model_final.pth").read_bytes()
    with pytest.raises(Exception):
        checkpointer.save("model_final", 3, unpicklable=lambda: None)
    assert (tmp_path / "model_final.pth").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [LAST_CHECKPOINT_FILE, "model_final.pth"]


def test_detector_checkpoint_that_does_not_fit_lists_the_keys(tmp_path):
    saved = build_detector(tiny_config())
    path = tmp_path / "detector.pth"
    torch.save({"model": saved.state_dict()}, path)
    other = build_detector(tiny_config("MODEL.ROI_BOX_HEAD.NUM_CLASSES", "9"))
    with pytest.raises(StateDictMismatchError) as error:
        load_model_weights(other, str(path))
    message = str(error.value)
    assert str(path) in message
    assert "roi_heads.box_predictor.cls_score.weight: file [6, 64] vs model [9, 64]" in message
    assert "roi_heads.box_predictor.bbox_pred.bias: file [24] vs model [36]" in message
    state = saved.state_dict()
    state["roi_heads.extra.weight"] = torch.zeros(1)
    del state["rpn.head.conv.weight"]
    torch.save(state, path)
    with pytest.raises(StateDictMismatchError) as error:
        load_model_weights(saved, str(path))
    assert "rpn.head.conv.weight" in str(error.value) and "roi_heads.extra.weight" in str(error.value)
    assert error.value.missing == ["rpn.head.conv.weight"] and error.value.unexpected == ["roi_heads.extra.weight"]


def _batches(start: int, stop: int):
    sizes = [(96, 128)]
    return [(random_images(sizes, (96, 128), seed=k), random_targets(sizes, seed=k), (k,)) for k in range(start, stop)]


def _detector_trainer(cfg, save_dir: str, start_iter_from_checkpoint: bool, max_iter: int):
    torch.manual_seed(0)
    model = build_detector(cfg)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_lr_scheduler(cfg, optimizer)
    checkpointer = Checkpointer(model, optimizer, scheduler, save_dir=save_dir)
    start_iter = checkpointer.resume_or_load()["iteration"] if start_iter_from_checkpoint else 0
    trainer = Trainer(model, _batches(start_iter, max_iter), optimizer, scheduler, torch.device("cpu"),
                      max_iter=max_iter, start_iter=start_iter, hooks=[CheckpointHook(checkpointer, period=2)])
    return trainer, model


@pytest.mark.slow
def test_resumed_training_equals_uninterrupted_training(tmp_path):
    cfg = tiny_config("SOLVER.IMS_PER_BATCH", "1", "SOLVER.BASE_LR", "0.01", "SOLVER.WARMUP_ITERS", "2")
    trainer, reference = _detector_trainer(cfg, str(tmp_path / "straight"), False, max_iter=4)
    trainer.train()

    first, _ = _detector_trainer(cfg, str(tmp_path / "resumed"), False, max_iter=2)
    first.train()
    assert sorted(os.listdir(tmp_path / "resumed")) == [LAST_CHECKPOINT_FILE, "model_0000002.pth", "model_final.pth"]
    second, resumed = _detector_trainer(cfg, str(tmp_path / "resumed"), True, max_iter=4)
    assert second.start_iter == 2
    second.train()
    assert second.iteration == 4
    for name, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name

"""OUTPUT_DIR/training_time.json (rebalance_hca.engine.training_time): written when training ends, added up
over a resume that continues the timed part, restarted where the interrupted part went untimed."""
import json
import os
from types import SimpleNamespace

import pytest

from rebalance_hca.engine.training_time import TRAINING_TIME_FILE, TrainingTimeHook, read_training_time


def run_hook(folder: str, start_iter: int, last_iteration: int, monkeypatch, clock: list[float]) -> None:
    """One training run from ``start_iter`` to ``last_iteration`` whose wall clock reads ``clock`` (setup
    start, end)."""
    readings = iter(clock)
    monkeypatch.setattr("rebalance_hca.engine.training_time.time.perf_counter", lambda: next(readings))
    hook = TrainingTimeHook(folder)
    trainer = SimpleNamespace(start_iter=start_iter, iteration=start_iter)
    hook.before_train(trainer)
    trainer.iteration = last_iteration
    hook.after_train(trainer)


def test_a_run_writes_its_time(tmp_path, monkeypatch):
    run_hook(str(tmp_path), 0, 300, monkeypatch, [10.0, 52.5])
    assert read_training_time(str(tmp_path)) == {"seconds": 42.5, "first_iteration": 1, "last_iteration": 300}


def test_a_resume_adds_to_the_timed_part(tmp_path, monkeypatch):
    run_hook(str(tmp_path), 0, 100, monkeypatch, [0.0, 30.0])
    run_hook(str(tmp_path), 100, 300, monkeypatch, [0.0, 60.0])
    assert read_training_time(str(tmp_path)) == {"seconds": 90.0, "first_iteration": 1, "last_iteration": 300}


def test_a_resume_after_an_untimed_part_says_so(tmp_path, monkeypatch):
    run_hook(str(tmp_path), 0, 100, monkeypatch, [0.0, 30.0])
    run_hook(str(tmp_path), 200, 300, monkeypatch, [0.0, 20.0])    # iterations 101..200 ran and wrote no file
    assert read_training_time(str(tmp_path)) == {"seconds": 20.0, "first_iteration": 201, "last_iteration": 300}


def test_a_run_with_nothing_left_to_train_writes_nothing(tmp_path, monkeypatch):
    run_hook(str(tmp_path), 300, 300, monkeypatch, [0.0, 1.0])
    assert not os.path.exists(tmp_path / TRAINING_TIME_FILE)


@pytest.mark.parametrize("content, message", [("{", "not JSON"), (json.dumps({"seconds": 1}), "no first_iteration")])
def test_a_damaged_file_names_itself(tmp_path, content, message):
    (tmp_path / TRAINING_TIME_FILE).write_text(content)
    with pytest.raises(ValueError, match=f"{TRAINING_TIME_FILE}: {message}"):
        read_training_time(str(tmp_path))

"""The wall time of a training run, kept in OUTPUT_DIR/training_time.json for tools/compare_runs.py.

The file holds {"seconds": float, "first_iteration": int, "last_iteration": int}: the wall time from the start
of the run's setup (model, data loader) to the end of its last iteration, validation and checkpoints included,
the final test excluded. A resumed run adds its own time to the file's when the file ends at the iteration it
resumes from; otherwise (the interrupted part wrote no file) the file starts at the resumed iteration, and
``first_iteration`` > 1 says that earlier iterations ran untimed.
"""
from __future__ import annotations

import json
import logging
import os
import time

from ..utils.atomic import atomic_write
from ..utils.comm import is_main_process
from .trainer import Hook, Trainer

logger = logging.getLogger(__name__)

TRAINING_TIME_FILE = "training_time.json"


def read_training_time(folder: str) -> dict | None:
    """The training_time.json of run folder ``folder``, or None when the run wrote none (it trained nothing).
    A file without the three keys raises ValueError naming it."""
    path = os.path.join(folder, TRAINING_TIME_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as stream:
        try:
            record = json.load(stream)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error})") from error
    missing = [key for key in ("seconds", "first_iteration", "last_iteration")
               if not isinstance(record, dict) or key not in record]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)}")
    return record


class TrainingTimeHook(Hook):
    """Writes ``TRAINING_TIME_FILE`` in ``output_dir`` atomically when training ends (rank 0; module docstring).
    ``started``: the ``time.perf_counter()`` reading at the start of the run's setup (default: the start of
    the loop)."""

    def __init__(self, output_dir: str, started: float | None = None) -> None:
        self.path = os.path.join(output_dir, TRAINING_TIME_FILE)
        self.started = started

    def before_train(self, trainer: Trainer) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def after_train(self, trainer: Trainer) -> None:
        if trainer.iteration <= trainer.start_iter or not is_main_process():
            return
        seconds = time.perf_counter() - self.started
        first_iteration = trainer.start_iter + 1
        earlier = read_training_time(os.path.dirname(self.path))
        if earlier is not None and earlier["last_iteration"] == trainer.start_iter:
            seconds += earlier["seconds"]
            first_iteration = earlier["first_iteration"]
        record = {"seconds": seconds, "first_iteration": first_iteration, "last_iteration": trainer.iteration}
        with atomic_write(self.path, binary=False) as stream:
            json.dump(record, stream, indent=2)
        logger.info("Training took %.1f s (iterations %d to %d; %s)", seconds, first_iteration, trainer.iteration,
                    self.path)

"""Seeding: every random generator of a run (RB's ``setup_seed``), seeds derived from the run's SEED for
one named use, and blocks run with the global generators seeded apart from the caller's streams."""
from __future__ import annotations

import contextlib
import random
import zlib
from typing import Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy, torch and CUDA generators; make cuDNN deterministic (RB: setup_seed(20))."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True


def derived_seed(seed: int, purpose: str, *keys: int) -> int:
    """A 32-bit seed for one use of the run's ``seed``: e.g. ``derived_seed(SEED, "sample", epoch, index)``.

    numpy's SeedSequence hashes (seed, purpose, keys), so different purposes or keys give independent
    streams, and the same arguments give the same seed in every process. ``keys`` must be >= 0.
    """
    purpose_key = zlib.crc32(purpose.encode("utf-8"))
    sequence = np.random.SeedSequence(entropy=seed % 2**64, spawn_key=(purpose_key, *keys))
    return int(sequence.generate_state(1)[0])


@contextlib.contextmanager
def seeded_global_generators(seed: int) -> Iterator[None]:
    """Run the block with python's, numpy's and torch's global CPU generators seeded with ``seed``
    (0 <= seed < 2**32, e.g. a ``derived_seed``), then give them back the states they had: the block
    neither depends on nor moves the caller's streams.

    CUDA generators are left alone (neither seeded nor saved).
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

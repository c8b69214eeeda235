"""Logging set-up (SGB's format, main process only) and the smoothed meters of SGB's training log line."""
from __future__ import annotations

import logging
import os
import sys
from collections import deque

import numpy as np

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


def setup_logger(name: str, save_dir: str, distributed_rank: int, filename: str = "log.txt") -> logging.Logger:
    """Logger ``name`` writing to stdout and ``save_dir/filename`` on rank 0; silent on other ranks.

    Calling it again replaces the handlers it added before (no duplicated lines).
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in [h for h in logger.handlers if getattr(h, "_rebalance_hca", False)]:
        logger.removeHandler(handler)
        handler.close()
    if distributed_rank > 0:
        logger.addHandler(_tagged(logging.NullHandler()))
        return logger
    formatter = logging.Formatter(LOG_FORMAT)
    stream_handler = logging.StreamHandler(stream=sys.stdout)
    stream_handler.setLevel(logging.DEBUG)
    stream_handler.setFormatter(formatter)
    logger.addHandler(_tagged(stream_handler))
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(save_dir, filename))
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(formatter)
        logger.addHandler(_tagged(file_handler))
    return logger


def _tagged(handler: logging.Handler) -> logging.Handler:
    handler._rebalance_hca = True
    return handler


class SmoothedValue:
    """A series of floats: median and mean over the last ``window_size`` values, and the global mean."""

    def __init__(self, window_size: int = 20) -> None:
        self.window: deque[float] = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0

    def update(self, value: float) -> None:
        self.window.append(value)
        self.total += value
        self.count += 1

    @property
    def median(self) -> float:
        return float(np.median(self.window))

    @property
    def avg(self) -> float:
        return float(np.mean(self.window))

    @property
    def global_avg(self) -> float:
        return self.total / max(self.count, 1)


class MetricLogger:
    """Named SmoothedValues printed as SGB prints them: ``name: median (global_avg)`` joined by two spaces."""

    def __init__(self, delimiter: str = "  ", window_size: int = 20) -> None:
        self.meters: dict[str, SmoothedValue] = {}
        self.delimiter = delimiter
        self.window_size = window_size

    def update(self, **values: float) -> None:
        for name, value in values.items():
            self.meters.setdefault(name, SmoothedValue(self.window_size)).update(float(value))

    def __getitem__(self, name: str) -> SmoothedValue:
        return self.meters[name]

    def __str__(self) -> str:
        return self.delimiter.join(f"{name}: {meter.median:.4f} ({meter.global_avg:.4f})"
                                   for name, meter in self.meters.items())

"""What the context benchmarks share: timing several steps in interleaved rounds."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_medians(steps: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median seconds of each step over ``repeat`` rounds that run every step once, in turn (after one warm-up
    round), so that a change of the machine's load hits all of them alike."""
    times = [[] for _ in steps]
    for round_index in range(repeat + 1):
        for step, step_times in zip(steps, times):
            start = time.perf_counter()
            step()
            if round_index:
                step_times.append(time.perf_counter() - start)
    return [statistics.median(step_times) for step_times in times]

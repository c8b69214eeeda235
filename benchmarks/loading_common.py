"""What the two loading benchmarks share: peak memory, fresh child processes, and the reference
implementations' per-image loop that counts the frequency statistics (SGB's ``get_VG_statistics``, which
PySGG's OI statistics repeat)."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Sequence

import numpy as np


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def run_in_child(script: str, which: str, data_dir: str, cwd: str) -> dict:
    """Run ``script --data-dir DATA_DIR --child WHICH`` in a fresh interpreter; its last stdout line (JSON)."""
    output = subprocess.run([sys.executable, script, "--data-dir", data_dir, "--child", which],
                            check=True, capture_output=True, text=True, cwd=cwd).stdout
    return json.loads(output.strip().splitlines()[-1])


def loop_frequency_statistics(boxes: Sequence[np.ndarray], classes: Sequence[np.ndarray],
                              relations: Sequence[np.ndarray], num_classes: int,
                              num_predicates: int) -> tuple[np.ndarray, np.ndarray]:
    """The references' per-image loops: fg (C, C, P) counts of (subject class, object class, predicate) and
    bg (C, C) counts of overlapping ordered pairs (all pairs in an image without any overlap), plus one.

    boxes[i]: (n_i, 4) xyxy; classes[i]: (n_i,) int; relations[i]: (m_i, 3) [subject, object, predicate].
    """
    fg = np.zeros((num_classes, num_classes, num_predicates), dtype=np.int64)
    bg = np.zeros((num_classes, num_classes), dtype=np.int64)
    for boxes_i, classes_i, rels_i in zip(boxes, classes, relations):
        for (o1, o2), predicate in zip(classes_i[rels_i[:, :2]], rels_i[:, 2]):
            fg[o1, o2, predicate] += 1
        boxes_f = boxes_i.astype(np.float64)
        top_left = np.maximum(boxes_f[:, None, :2], boxes_f[None, :, :2])
        bottom_right = np.minimum(boxes_f[:, None, 2:], boxes_f[None, :, 2:])
        wh = np.clip(bottom_right - top_left, 0, None)
        overlaps = wh[..., 0] * wh[..., 1] > 0
        np.fill_diagonal(overlaps, 0)
        everything = np.ones_like(overlaps)
        np.fill_diagonal(everything, 0)
        pairs = np.column_stack(np.where(overlaps))
        if pairs.size == 0:
            pairs = np.column_stack(np.where(everything))
        for o1, o2 in classes_i[pairs]:
            bg[o1, o2] += 1
    bg += 1
    return fg, bg

"""What the two evaluator benchmarks share: the seeded model-like ranked prediction, the timing loop and
the agreement check against a loop reference."""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np


def ranked_prediction(rng: np.random.Generator, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                      source: np.ndarray, relations: np.ndarray, num_predicates: int,
                      rel_scores_dtype: type = np.float64) -> dict:
    """A prediction over every ordered pair of the k detections, as a model that has learnt something.

    boxes (k, 4), labels (k,), scores (k,): the detections; source (k,): the GT object each detection copies;
    relations (m, 3): GT [subject, object, predicate]. Relation scores (k(k-1), num_predicates) are a softmax
    of N(0, 2) logits in which the GT predicate of a pair's source objects gets +3; pairs are ranked by
    subject score * object score * max foreground probability, as SGB's post-processor does.
    """
    subject_index, object_index = np.nonzero(~np.eye(len(boxes), dtype=bool))
    pairs = np.column_stack([subject_index, object_index])
    logits = rng.normal(0, 2, (len(pairs), num_predicates)).astype(np.float32)
    pair_sources = source[pairs[:, 0]] * 1000 + source[pairs[:, 1]]
    for subject, obj, predicate in relations:
        logits[pair_sources == subject * 1000 + obj, predicate] += 3.0
    rel_scores = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(rel_scores_dtype)
    order = np.argsort(-(scores[pairs[:, 0]] * scores[pairs[:, 1]] * rel_scores[:, 1:].max(1)), kind="stable")
    return {"boxes": boxes, "labels": labels, "scores": scores,
            "rel_pair_idxs": pairs[order], "rel_scores": rel_scores[order]}


def run(make_evaluator: Callable, images: list[tuple[dict, dict]], repeats: int) -> tuple[float, dict]:
    """Best ms/image over ``repeats`` runs (add every image, then summarize) and the results."""
    best = math.inf
    for _ in range(repeats):
        evaluator = make_evaluator()
        start = time.perf_counter()
        for groundtruth, prediction in images:
            evaluator.add(groundtruth, prediction)
        results = evaluator.summarize()
        best = min(best, (time.perf_counter() - start) / len(images) * 1000)
    return best, results


def agree(fast: dict, reference: dict, atol: float) -> bool:
    """Whether every number of the reference's results equals the fast one within ``atol``."""
    for key, expected in reference.items():
        if not np.allclose(np.asarray(fast[key], dtype=np.float64), np.asarray(expected, dtype=np.float64),
                           rtol=0, atol=atol, equal_nan=True):
            print(f"  MISMATCH {key}: {fast[key]} vs {expected}")
            return False
    return True

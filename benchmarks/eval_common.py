"""What the two evaluator benchmarks share: the seeded random ground truth, the model-like ranked
prediction, the timing loop and the agreement check against a loop reference."""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np


def random_groundtruth(rng: np.random.Generator, num_objects: tuple[int, int], num_relations: tuple[int, int],
                       extent: float, box_size: tuple[float, float], num_classes: int, num_predicates: int,
                       whole_pixels: bool = False) -> dict:
    """One image's ground truth: {"boxes" (n, 4) float32 xyxy, "labels" (n,) int64 in 1..num_classes-1,
    "relations" (m, 3) [subject, object, predicate] with subject != object}.

    n is drawn from [num_objects[0], num_objects[1]) and m from [num_relations[0], num_relations[1]); each
    box's top-left corner is uniform in [0, extent)^2 and its width and height uniform in ``box_size``
    (rounded to whole pixels with ``whole_pixels``). Draws from ``rng`` in a fixed order, so a seed gives
    the same images as before this function was shared.
    """
    count = int(rng.integers(*num_objects))
    top_left = rng.uniform(0, extent, (count, 2))
    boxes = np.concatenate([top_left, top_left + rng.uniform(*box_size, (count, 2))], 1)
    if whole_pixels:
        boxes = boxes.round()
    labels = rng.integers(1, num_classes, count)
    relation_count = int(rng.integers(*num_relations))
    subjects = rng.integers(0, count, relation_count)
    objects = (subjects + rng.integers(1, count, relation_count)) % count
    relations = np.column_stack([subjects, objects, rng.integers(1, num_predicates, relation_count)])
    return {"boxes": boxes.astype(np.float32), "labels": labels, "relations": relations}


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

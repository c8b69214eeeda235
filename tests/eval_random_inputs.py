"""Random per-image inputs for the evaluation tests (hypothesis strategies and seeded numpy generators).

Boxes come from a small integer grid and scores from a few values, so that IoUs fall exactly on the
threshold and scores tie often: the cases where an evaluator is most likely to differ from SGB's rules.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

NUM_CLASSES = 4
SCORE_VALUES = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)


def _boxes(draw, count: int) -> np.ndarray:
    corners = draw(st.lists(st.tuples(*[st.integers(0, 12)] * 4), min_size=count, max_size=count))
    boxes = np.array([[min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)] for x1, y1, x2, y2 in corners],
                     dtype=np.float32).reshape(-1, 4)
    return boxes


@st.composite
def images(draw, mode: str, num_predicates: int, max_pairs: int = 30) -> tuple[dict, dict]:
    """One (groundtruth, full prediction) pair for ``mode``."""
    num_gt = draw(st.integers(1, 6))
    gt_boxes = _boxes(draw, num_gt)
    gt_labels = np.array(draw(st.lists(st.integers(1, NUM_CLASSES - 1), min_size=num_gt, max_size=num_gt)))
    relations = np.array(draw(st.lists(st.tuples(st.integers(0, num_gt - 1), st.integers(0, num_gt - 1),
                                                 st.integers(1, num_predicates - 1)), max_size=6)),
                         dtype=np.int64).reshape(-1, 3)
    groundtruth = {"boxes": gt_boxes, "labels": gt_labels, "relations": relations}
    if mode == "predcls":
        num_objects = num_gt
        boxes, labels = gt_boxes, gt_labels
    else:
        # SGCls predicts labels for the GT boxes; SGDet detects jittered copies of GT boxes
        num_objects = num_gt if mode == "sgcls" else draw(st.integers(1, 7))
        copies = draw(st.lists(st.integers(0, num_gt - 1), min_size=num_objects, max_size=num_objects))
        jitter = np.array(draw(st.lists(st.tuples(*[st.integers(-1, 1)] * 4), min_size=num_objects,
                                        max_size=num_objects)), dtype=np.float32).reshape(-1, 4)
        boxes = gt_boxes if mode == "sgcls" else gt_boxes[copies] + jitter
        labels = np.array(draw(st.lists(st.integers(1, NUM_CLASSES - 1), min_size=num_objects, max_size=num_objects)))
    scores = np.array(draw(st.lists(st.sampled_from(SCORE_VALUES[1:]), min_size=num_objects, max_size=num_objects)),
                      dtype=np.float32)
    pairs = np.array(draw(st.lists(st.tuples(st.integers(0, num_objects - 1), st.integers(0, num_objects - 1)),
                                   max_size=max_pairs)), dtype=np.int64).reshape(-1, 2)
    rel_scores = np.array(draw(st.lists(st.sampled_from(SCORE_VALUES), min_size=len(pairs) * num_predicates,
                                        max_size=len(pairs) * num_predicates)),
                          dtype=np.float32).reshape(len(pairs), num_predicates)
    prediction = {"boxes": boxes, "labels": labels, "scores": scores, "rel_pair_idxs": pairs, "rel_scores": rel_scores}
    return groundtruth, prediction


def numpy_image(rng: np.random.Generator, mode: str, num_predicates: int, num_detections: int = 20,
                tie_scores: bool = True) -> tuple[dict, dict]:
    """A larger random image (all ordered pairs of up to ``num_detections`` objects), seeded."""
    num_gt = int(rng.integers(2, 9))
    top_left = rng.integers(0, 40, (num_gt, 2))
    gt_boxes = np.concatenate([top_left, top_left + rng.integers(0, 20, (num_gt, 2))], 1).astype(np.float32)
    gt_labels = rng.integers(1, NUM_CLASSES, num_gt)
    num_relations = int(rng.integers(0, 8))
    relations = np.column_stack([rng.integers(0, num_gt, num_relations), rng.integers(0, num_gt, num_relations),
                                 rng.integers(1, num_predicates, num_relations)])
    if mode == "predcls":
        boxes, labels = gt_boxes, gt_labels
    elif mode == "sgcls":
        boxes = gt_boxes
        labels = np.where(rng.random(num_gt) < 0.7, gt_labels, rng.integers(1, NUM_CLASSES, num_gt))
    else:
        source = rng.integers(0, num_gt, num_detections)
        boxes = (gt_boxes[source] + rng.integers(-2, 3, (num_detections, 4))).astype(np.float32)
        labels = np.where(rng.random(num_detections) < 0.7, gt_labels[source], rng.integers(1, NUM_CLASSES,
                                                                                              num_detections))
    count = len(boxes)
    subject, obj = np.nonzero(~np.eye(count, dtype=bool))
    pairs = np.column_stack([subject, obj])[rng.permutation(count * (count - 1))]
    if tie_scores:
        scores = rng.choice(np.array(SCORE_VALUES[1:], dtype=np.float32), count)
        rel_scores = rng.choice(np.array(SCORE_VALUES, dtype=np.float32), (len(pairs), num_predicates))
    else:
        scores = rng.random(count).astype(np.float32)
        rel_scores = rng.random((len(pairs), num_predicates)).astype(np.float32)
    prediction = {"boxes": boxes, "labels": labels, "scores": scores, "rel_pair_idxs": pairs, "rel_scores": rel_scores}
    return {"boxes": gt_boxes, "labels": gt_labels, "relations": relations}, prediction


def zeroshot_triplets(num_predicates: int) -> np.ndarray:
    """A fixed zero-shot set: every (subject class, object class, predicate) with subject + object even."""
    return np.array([(s, o, p) for s in range(1, NUM_CLASSES) for o in range(1, NUM_CLASSES)
                     for p in range(1, num_predicates) if (s + o) % 2 == 0])


def assert_same_results(actual: dict, expected: dict, tolerance: float = 1e-9) -> None:
    """Every key of ``expected`` equal in ``actual`` to ``tolerance`` (NaN equals NaN)."""
    for key, value in expected.items():
        if isinstance(value, str):
            assert actual[key] == value, key
            continue
        assert np.allclose(np.asarray(actual[key], dtype=np.float64), np.asarray(value, dtype=np.float64),
                           rtol=0, atol=tolerance, equal_nan=True), (key, actual[key], value)

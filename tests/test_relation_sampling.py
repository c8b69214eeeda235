"""Relation pair sampling on hand-worked examples (docs/reference.md#pair-sampling)."""
from __future__ import annotations

import pytest
import torch

from rebalance_hca.modeling.relation_head.sampling import RelationPairSampler, all_ordered_pairs

SUBJECT_BOX = [0.0, 0.0, 9.0, 9.0]  # area 100
OBJECT_BOX = [50.0, 50.0, 59.0, 59.0]
FAR_BOX = [100.0, 100.0, 109.0, 109.0]


def _pair_set(pairs: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(s), int(o)) for s, o in pairs.tolist()}


def _split(pairs: torch.Tensor, labels: torch.Tensor) -> tuple[dict[tuple[int, int], int], list[tuple[int, int]]]:
    """-> ({positive pair: label}, [negative pairs]); positives must come first."""
    num_positives = int((labels > 0).sum())
    assert (labels[:num_positives] > 0).all() and (labels[num_positives:] == 0).all()
    positives = {(int(s), int(o)): int(label) for (s, o), label in zip(pairs[:num_positives].tolist(),
                                                                     labels[:num_positives].tolist())}
    assert len(positives) == num_positives
    return positives, [tuple(pair) for pair in pairs[num_positives:].tolist()]


# ---------------------------------------------------------------- PredCls / SGCls (gtbox_relsample)

def _relation_with_five_gt_pairs() -> torch.Tensor:
    relation = torch.zeros(4, 4, dtype=torch.int64)
    for (s, o), predicate in {(0, 1): 3, (1, 0): 7, (1, 2): 5, (2, 3): 1, (3, 0): 9}.items():
        relation[s, o] = predicate
    return relation


def test_gt_box_pairs_caps_positives_and_fills_with_negatives():
    # 5 GT relations, batch 8, fraction 0.25 -> 2 positives; 4 * 3 = 12 ordered pairs minus 5 GT = 7 negative
    # candidates, of which 8 - 2 = 6 are kept.
    relation = _relation_with_five_gt_pairs()
    sampler = RelationPairSampler(batch_size_per_image=8, positive_fraction=0.25)
    torch.manual_seed(0)
    pairs, labels = sampler.gt_box_pairs(relation)
    positives, negatives = _split(pairs, labels)
    assert pairs.dtype == labels.dtype == torch.int64
    assert len(positives) == 2 and len(negatives) == 6
    assert all(relation[s, o] == label for (s, o), label in positives.items())
    assert len(set(negatives)) == 6
    assert all(s != o and relation[s, o] == 0 for s, o in negatives)


def test_gt_box_pairs_positive_subset_is_random():
    relation = _relation_with_five_gt_pairs()
    sampler = RelationPairSampler(batch_size_per_image=8, positive_fraction=0.25)
    torch.manual_seed(1)
    seen = set()
    for _ in range(50):
        positives, _ = _split(*sampler.gt_box_pairs(relation))
        seen |= set(positives)
    assert seen == _pair_set(torch.nonzero(relation))


def test_gt_box_pairs_keeps_all_when_under_budget():
    # 3 objects, one GT relation (2, 0) = 4: 1 positive and all 6 - 1 = 5 other ordered pairs.
    relation = torch.zeros(3, 3, dtype=torch.int64)
    relation[2, 0] = 4
    pairs, labels = RelationPairSampler().gt_box_pairs(relation)
    assert pairs[0].tolist() == [2, 0] and labels[0] == 4
    assert _pair_set(pairs[1:]) == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 1)}
    assert labels[1:].tolist() == [0] * 5


def test_gt_box_pairs_is_reproducible_from_the_seed():
    relation = _relation_with_five_gt_pairs()
    sampler = RelationPairSampler(batch_size_per_image=8, positive_fraction=0.25)
    torch.manual_seed(3)
    first = sampler.gt_box_pairs(relation)
    torch.manual_seed(3)
    second = sampler.gt_box_pairs(relation)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_gt_box_pairs_single_and_no_object():
    pairs, labels = RelationPairSampler().gt_box_pairs(torch.zeros(1, 1, dtype=torch.int64))
    assert pairs.tolist() == [[0, 0]] and labels.tolist() == [0]
    pairs, labels = RelationPairSampler().gt_box_pairs(torch.zeros(0, 0, dtype=torch.int64))
    assert pairs.shape == (0, 2) and labels.shape == (0,)


def test_gt_box_pairs_rejects_non_square_relation():
    with pytest.raises(ValueError, match="relation"):
        RelationPairSampler().gt_box_pairs(torch.zeros(2, 3, dtype=torch.int64))


# ---------------------------------------------------------------- SGDet (detect_relsample)

def _gt_subject_object(predicate: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GT g0 = SUBJECT_BOX label 1, g1 = OBJECT_BOX label 2, relation g0 -> g1 = predicate."""
    gt_relation = torch.zeros(2, 2, dtype=torch.int64)
    gt_relation[0, 1] = predicate
    return torch.tensor([SUBJECT_BOX, OBJECT_BOX]), torch.tensor([1, 2]), gt_relation


def _matching_detections() -> tuple[torch.Tensor, torch.Tensor]:
    """d0 = g0's box, label 1: match (IoU 1).
    d1 = (0, 0, 9, 19), label 1: IoU with g0 = 100 / 200 = 0.5 exactly, not a match at threshold 0.5.
    d2 = g1's box, label 2: match.
    d3 = g1's box, label 3: wrong class, not a match (but labelled, so a negative candidate).
    d4 = far away, label 0: unmatched, in no pair."""
    boxes = torch.tensor([SUBJECT_BOX, [0.0, 0.0, 9.0, 19.0], OBJECT_BOX, OBJECT_BOX, FAR_BOX])
    return boxes, torch.tensor([1, 1, 2, 3, 0])


def test_detection_pairs_iou_and_class_matching():
    boxes, labels = _matching_detections()
    pairs, pair_labels = RelationPairSampler().detection_pairs(boxes, labels, *_gt_subject_object())
    positives, negatives = _split(pairs, pair_labels)
    assert positives == {(0, 2): 3}
    labelled = [0, 1, 2, 3]
    expected_negatives = {(p, q) for p in labelled for q in labelled if p != q} - {(0, 2)}
    assert len(negatives) == 11 and set(negatives) == expected_negatives


def test_detection_pairs_lower_threshold_admits_the_half_iou_detection():
    boxes, labels = _matching_detections()
    sampler = RelationPairSampler(fg_iou_threshold=0.49)
    positives, negatives = _split(*sampler.detection_pairs(boxes, labels, *_gt_subject_object()))
    assert positives == {(0, 2): 3, (1, 2): 3}
    assert len(negatives) == 10 and 4 not in {index for pair in negatives for index in pair}


def test_detection_pairs_never_pair_a_detection_with_itself():
    # Two GT objects with the same box and class, related g0 -> g1 = 5; both detections match both GT objects.
    gt_relation = torch.tensor([[0, 5], [0, 0]])
    gt_boxes = torch.tensor([SUBJECT_BOX, SUBJECT_BOX])
    detections = torch.tensor([SUBJECT_BOX, SUBJECT_BOX])
    pairs, labels = RelationPairSampler().detection_pairs(detections, torch.tensor([1, 1]), gt_boxes,
                                                          torch.tensor([1, 1]), gt_relation)
    positives, negatives = _split(pairs, labels)
    assert positives == {(0, 1): 5, (1, 0): 5}
    assert negatives == []


def _three_by_three_detections() -> tuple[torch.Tensor, torch.Tensor]:
    """d0-d2 on g0's box (label 1), d3-d5 on g1's box (label 2): 3 x 3 = 9 matching pairs."""
    return torch.tensor([SUBJECT_BOX] * 3 + [OBJECT_BOX] * 3), torch.tensor([1, 1, 1, 2, 2, 2])


def test_detection_pairs_sample_at_most_four_per_gt_relation():
    boxes, labels = _three_by_three_detections()
    matching = {(p, q) for p in range(3) for q in range(3, 6)}
    sampler = RelationPairSampler()
    torch.manual_seed(0)
    for _ in range(10):
        positives, negatives = _split(*sampler.detection_pairs(boxes, labels, *_gt_subject_object(predicate=6)))
        assert len(positives) == 4 and set(positives) <= matching
        assert set(positives.values()) == {6}
        # 6 * 5 = 30 candidates minus all 9 matching pairs, drawn or not.
        assert len(negatives) == 21 and not set(negatives) & matching


def test_detection_pairs_sample_several_gt_relations_at_once():
    # g0 -> g1 = 6 and g0 -> g2 = 7, g2 = FAR_BOX label 3 with d6-d8 on it: 9 matching pairs each, 4 + 4 drawn.
    boxes = torch.tensor([SUBJECT_BOX] * 3 + [OBJECT_BOX] * 3 + [FAR_BOX] * 3)
    labels = torch.tensor([1, 1, 1, 2, 2, 2, 3, 3, 3])
    gt_boxes = torch.tensor([SUBJECT_BOX, OBJECT_BOX, FAR_BOX])
    gt_relation = torch.tensor([[0, 6, 7], [0, 0, 0], [0, 0, 0]])
    torch.manual_seed(0)
    pairs, pair_labels = RelationPairSampler().detection_pairs(boxes, labels, gt_boxes, torch.tensor([1, 2, 3]),
                                                               gt_relation)
    positives, negatives = _split(pairs, pair_labels)
    to_g1 = {pair for pair, label in positives.items() if label == 6}
    to_g2 = {pair for pair, label in positives.items() if label == 7}
    assert len(to_g1) == len(to_g2) == 4
    assert all(s < 3 <= o < 6 for s, o in to_g1) and all(s < 3 and o >= 6 for s, o in to_g2)
    assert len(negatives) == 9 * 8 - 18


def test_detection_pairs_weighting_is_proportional_to_iou_product():
    # Threshold 0, one pair per GT relation. g0's matches: d0 IoU 1, d1 = (0, 0, 9, 19) IoU 0.5,
    # d2 = (0, 0, 9, 39) IoU 100 / 400 = 0.25; g1's match d3 IoU 1. Weights 1 : 0.5 : 0.25 = 4/7, 2/7, 1/7.
    boxes = torch.tensor([SUBJECT_BOX, [0.0, 0.0, 9.0, 19.0], [0.0, 0.0, 9.0, 39.0], OBJECT_BOX])
    labels = torch.tensor([1, 1, 1, 2])
    sampler = RelationPairSampler(batch_size_per_image=4, fg_iou_threshold=0.0, num_sample_per_gt_rel=1)
    gt = _gt_subject_object()
    torch.manual_seed(0)
    counts = torch.zeros(3)
    draws = 2000
    for _ in range(draws):
        pairs, pair_labels = sampler.detection_pairs(boxes, labels, *gt)
        positives, _ = _split(pairs, pair_labels)
        (subject, _), = positives
        counts[subject] += 1
    torch.testing.assert_close(counts / draws, torch.tensor([4 / 7, 2 / 7, 1 / 7]), atol=0.03, rtol=0.0)


def test_detection_pairs_near_zero_weight_is_never_drawn():
    # g0 = (0, 0, 999, 999), area 1e6. d0, d1 = g0's box (IoU 1); d2 = (0, 0, 0, 0), IoU 1e-6 (a match at
    # threshold 0). d3-d5 on g1's box. 9 matching pairs, 4 drawn: the 3 with d2 weigh 1e-6 against 1.
    big_box = [0.0, 0.0, 999.0, 999.0]
    gt_boxes = torch.tensor([big_box, OBJECT_BOX])
    gt_relation = torch.tensor([[0, 2], [0, 0]])
    boxes = torch.tensor([big_box, big_box, [0.0, 0.0, 0.0, 0.0]] + [OBJECT_BOX] * 3)
    labels = torch.tensor([1, 1, 1, 2, 2, 2])
    sampler = RelationPairSampler(fg_iou_threshold=0.0)
    torch.manual_seed(0)
    drawn_subjects = set()
    for _ in range(200):
        positives, _ = _split(*sampler.detection_pairs(boxes, labels, gt_boxes, torch.tensor([1, 2]), gt_relation))
        assert len(positives) == 4
        drawn_subjects |= {subject for subject, _ in positives}
    assert drawn_subjects == {0, 1}


def test_detection_pairs_cap_positives_over_gt_relations():
    # Three GT relations g0 -> g1, g1 -> g2, g2 -> g0, each matched by exactly one detection pair;
    # batch 8, fraction 0.25 -> 2 positives, and the 3 * 2 - 3 = 3 other pairs as negatives.
    gt_boxes = torch.tensor([SUBJECT_BOX, OBJECT_BOX, FAR_BOX])
    gt_labels = torch.tensor([1, 2, 3])
    gt_relation = torch.tensor([[0, 4, 0], [0, 0, 5], [6, 0, 0]])
    sampler = RelationPairSampler(batch_size_per_image=8, positive_fraction=0.25)
    torch.manual_seed(0)
    positives, negatives = _split(*sampler.detection_pairs(gt_boxes, gt_labels, gt_boxes, gt_labels, gt_relation))
    assert len(positives) == 2
    assert set(positives.items()) <= {((0, 1), 4), ((1, 2), 5), ((2, 0), 6)}
    assert set(negatives) == {(1, 0), (2, 1), (0, 2)}


def test_detection_pairs_require_box_overlap():
    # No GT relation. d0 = (0, 0, 9, 9), d1 = (5, 5, 14, 14) overlaps d0 and d3, d2 is far away,
    # d3 = d0's box (IoU 1 with d0, so excluded).
    boxes = torch.tensor([SUBJECT_BOX, [5.0, 5.0, 14.0, 14.0], FAR_BOX, SUBJECT_BOX])
    labels = torch.tensor([1, 1, 1, 1])
    sampler = RelationPairSampler(require_box_overlap=True)
    gt_boxes, gt_labels, _ = _gt_subject_object()
    no_relation = torch.zeros(2, 2, dtype=torch.int64)
    pairs, pair_labels = sampler.detection_pairs(boxes, labels, gt_boxes, gt_labels, no_relation)
    assert _pair_set(pairs) == {(0, 1), (1, 0), (1, 3), (3, 1)} and len(pairs) == 4
    assert pair_labels.tolist() == [0] * 4


def test_detection_pairs_dummy_pair_when_nothing_is_labelled():
    boxes = torch.tensor([SUBJECT_BOX, OBJECT_BOX])
    pairs, labels = RelationPairSampler().detection_pairs(boxes, torch.tensor([0, 0]), *_gt_subject_object())
    assert pairs.tolist() == [[0, 0]] and labels.tolist() == [0]
    assert pairs.dtype == labels.dtype == torch.int64


def test_detection_pairs_without_detections():
    pairs, labels = RelationPairSampler().detection_pairs(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64),
                                                          *_gt_subject_object())
    assert pairs.shape == (0, 2) and labels.shape == (0,)


# ---------------------------------------------------------------- test pairs

def test_all_ordered_pairs():
    assert all_ordered_pairs(0, "cpu").shape == (0, 2)
    assert all_ordered_pairs(1, "cpu").tolist() == [[0, 0]]
    three = all_ordered_pairs(3, "cpu")
    assert three.dtype == torch.int64
    assert three.tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]

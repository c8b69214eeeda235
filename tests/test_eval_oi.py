"""OIEvaluator: PySGG's Open Images V6 metrics (docs/reference.md#oi-evaluation-protocol)
on hand-worked cases, against the
PySGG-style loop reference on random inputs, merging, compact predictions and bad input.

Hand-worked cases use 4 predicates (background + p1, p2, p3), object scores 1 and the boxes
A = [0, 0, 9, 9] and B = [20, 20, 29, 29] (100 px² each with the +1 convention).
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from eval_random_inputs import assert_same_results, numpy_image
from oi_loop_reference import OILoopReference
from rebalance_hca.evaluation import OIEvaluator, compact_oi_prediction, load_predictions, save_predictions

A, B = [0, 0, 9, 9], [20, 20, 29, 29]
EPS = 1e-12


def one_pair_image(relations, rel_scores, predicted_subject_box=A):
    """GT objects A (class 1) and B (class 2); one predicted pair (0, 1) with ``rel_scores`` over 4 columns."""
    groundtruth = {"boxes": np.array([A, B], dtype=np.float32), "labels": np.array([1, 2]),
                   "relations": np.array(relations, dtype=np.int64).reshape(-1, 3)}
    prediction = {"boxes": np.array([predicted_subject_box, B], dtype=np.float32), "labels": np.array([1, 2]),
                  "scores": np.ones(2, dtype=np.float32), "rel_pair_idxs": np.array([[0, 1]]),
                  "rel_scores": np.array([rel_scores], dtype=np.float32)}
    return groundtruth, prediction


def evaluate(*images, num_predicates=4):
    evaluator = OIEvaluator(num_predicates=num_predicates)
    for groundtruth, prediction in images:
        evaluator.add(groundtruth, prediction)
    return evaluator.summarize()


def test_gt_predicate_ranked_second_for_its_pair():
    # candidates: (0,1,p1) .6 then (0,1,p2) .3; GT (0,1,p2) is hit by the second one. The classic block
    # takes the argmax p1 only: a miss.
    results = evaluate(one_pair_image([[0, 1, 2]], [0, .6, .3, .1]))
    assert results["R@1"] == 0.0
    assert results["R@5"] == pytest.approx(1 / (1 + EPS), abs=0)
    assert results["R@50"] == results["R@5"]
    assert results["mR@50"] == 0.0 and results["classic"]["R@50"] == 0.0
    # p2: one detection, a TP, npos 1 -> AP 1; p1: a FP with no GT -> AP 0; p3: no detection -> 0
    assert results["AP_rel_per_predicate"] == pytest.approx([0, 1, 0], abs=1e-11)
    assert results["npos_per_predicate"] == [0, 1, 0]
    assert results["mAP_rel"] == pytest.approx(1 / 3, abs=1e-11)
    assert results["wmAP_rel"] == pytest.approx(1, abs=1e-11)
    assert results["score_wtd"] == pytest.approx(0.2 + 0.4 + 0.4, abs=1e-11)
    assert results["final_score"] == pytest.approx(0.2 + 0.4 / 3 + 0.4 / 3, abs=1e-11)


def test_a_duplicated_gt_triplet_is_all_hit_by_recall_and_claimed_once_by_ap():
    # two identical GT rows (0,1,p1); one p1 candidate: recall 2/2, AP = precision 1 up to recall 1/2
    results = evaluate(one_pair_image([[0, 1, 1], [0, 1, 1]], [0, .9, .05, .05]))
    assert results["R@1"] == pytest.approx(2 / (2 + EPS), abs=0)
    assert results["npos_per_predicate"] == [2, 0, 0]
    assert results["AP_rel_per_predicate"][0] == pytest.approx(0.5, abs=1e-11)
    assert results["AP_phr_per_predicate"][0] == pytest.approx(0.5, abs=1e-11)
    assert results["wmAP_rel"] == pytest.approx(0.5, abs=1e-11)
    assert results["classic"]["R@50"] == 1.0


def test_iou_of_exactly_one_half_counts_for_recall_but_not_for_the_relation_ap():
    # predicted subject [0,0,9,4]: intersection 10*5 = 50, union 100 + 50 - 50 = 100 -> IoU 0.5 exactly.
    # Recall needs >= 0.5: a hit. Relation AP needs min(IoU_s, IoU_o) > 0.5: a FP. The phrase boxes
    # are both [0,0,29,29]: IoU 1, a TP.
    results = evaluate(one_pair_image([[0, 1, 1]], [0, .9, .05, .05], predicted_subject_box=[0, 0, 9, 4]))
    assert results["R@50"] == pytest.approx(1 / (1 + EPS), abs=0)
    assert results["AP_rel_per_predicate"][0] == 0.0
    assert results["AP_phr_per_predicate"][0] == pytest.approx(1, abs=1e-11)
    assert results["mR@50"] == pytest.approx(1 / 3)


def test_a_predicate_absent_from_the_test_set_counts_zero_in_map_and_nothing_in_wmap():
    # GT only p1 (hit); p2 gets a FP candidate, p3 nothing: mAP over all 3 predicates, wmAP weights 1, 0, 0
    results = evaluate(one_pair_image([[0, 1, 1]], [0, .7, .2, .1]))
    assert results["npos_per_predicate"] == [1, 0, 0]
    assert results["AP_rel_per_predicate"] == pytest.approx([1, 0, 0], abs=1e-11)
    assert results["mAP_rel"] == pytest.approx(1 / 3, abs=1e-11)
    assert results["mAP_phr"] == pytest.approx(1 / 3, abs=1e-11)
    assert results["wmAP_rel"] == pytest.approx(1, abs=1e-11)
    assert results["mR@50"] == pytest.approx(1 / 3)
    assert results["mR_per_predicate@50"] == [1.0, 0.0, 0.0]


def test_oi_block_counts_an_image_without_predictions_that_the_classic_block_skips():
    hit = one_pair_image([[0, 1, 1]], [0, .9, .05, .05])
    empty = (hit[0], {**hit[1], "rel_pair_idxs": np.zeros((0, 2), dtype=np.int64),
                      "rel_scores": np.zeros((0, 4), dtype=np.float32)})
    results = evaluate(hit, empty)
    assert results["R@50"] == pytest.approx(1 / (2 + EPS), abs=0)
    assert results["R@50_per_image"] == pytest.approx(0.5, abs=1e-11)
    assert results["classic"]["R@50"] == 1.0 and results["classic"]["num_skipped"] == 1


def test_candidates_are_top2_per_pair_then_top100_then_the_score_cut():
    # 8 objects: 56 pairs -> 112 entries, the best 100 kept; then the 14 pairs of object 0 (score 1e-6),
    # whose entries are all <= 1e-5, are cut: 84 candidates
    rng = np.random.default_rng(3)
    groundtruth, prediction = numpy_image(rng, "sgdet", 6, num_detections=8, tie_scores=False)
    prediction["scores"][0] = 1e-6
    candidates = compact_oi_prediction(prediction, groundtruth, "sgdet", 6)
    pairs, rel_scores, scores = prediction["rel_pair_idxs"], prediction["rel_scores"], prediction["scores"]
    entries = []
    for (s, o), row in zip(pairs.tolist(), rel_scores[:, 1:]):
        for p in np.argsort(-row)[:2]:
            entries.append((np.float32(scores[s] * scores[o]) * row[p], s, o, p + 1))
    expected = [entry for entry in sorted(entries, key=lambda e: -e[0])[:100] if entry[0] > 1e-5]
    assert len(entries) == 112 and len(expected) == 84
    assert candidates["oi_triplets"].tolist() == [[s, o, p] for _, s, o, p in expected]
    np.testing.assert_array_equal(candidates["oi_scores"], np.array([e[0] for e in expected], dtype=np.float32))


def random_images(seed, mode, count=25, num_predicates=6):
    rng = np.random.default_rng(seed)
    return [numpy_image(rng, mode, num_predicates, num_detections=int(rng.integers(2, 16)), tie_scores=False)
            for _ in range(count)]


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_pysgg_style_loop_reference_on_random_images(mode, seed):
    images = random_images(seed, mode)
    evaluator, reference = OIEvaluator(num_predicates=6, mode=mode), OILoopReference(num_predicates=6, mode=mode)
    for groundtruth, prediction in images:
        evaluator.add(groundtruth, prediction)
        reference.add(groundtruth, prediction)
    expected = reference.summarize()
    actual = evaluator.summarize()
    assert_same_results(actual, expected, tolerance=1e-12)
    assert 0 < expected["wmAP_rel"] < 1 and 0 < expected["R@50"] < 1  # the inputs exercise the metrics


def test_merge_equals_one_evaluator_fed_all_images():
    images = random_images(5, "sgdet", count=12)
    whole = OIEvaluator(num_predicates=6)
    parts = [OIEvaluator(num_predicates=6) for _ in range(3)]
    for index, (groundtruth, prediction) in enumerate(images):
        whole.add(groundtruth, prediction, image_id=index)
        parts[index % 3].add(groundtruth, prediction, image_id=index)
    merged = OIEvaluator(num_predicates=6)
    merged.merge(parts[0])
    merged.merge(pickle.loads(pickle.dumps(parts[1].state())))
    merged.merge(parts[2].state())
    assert merged.summarize() == whole.summarize()
    with pytest.raises(ValueError, match="image ids added to both"):
        merged.merge(parts[0])
    with pytest.raises(ValueError, match="iou_threshold differs"):
        OIEvaluator(num_predicates=6, iou_threshold=0.7).merge(parts[0])


@pytest.mark.parametrize("mode", ["predcls", "sgdet"])
def test_oi_compact_predictions_from_a_file_evaluate_like_full_ones(mode, tmp_path):
    images = random_images(7, mode, count=8)
    groundtruths = [groundtruth for groundtruth, _ in images]
    compact = [compact_oi_prediction(prediction, groundtruth, mode, 6) for groundtruth, prediction in images]
    save_predictions(tmp_path / "p.npz", compact, mode, 6, groundtruths=groundtruths)
    loaded = load_predictions(tmp_path / "p.npz")["predictions"]
    full, from_file = OIEvaluator(num_predicates=6, mode=mode), OIEvaluator(num_predicates=6, mode=mode)
    for groundtruth, (_, prediction), saved in zip(groundtruths, images, loaded):
        full.add(groundtruth, prediction)
        from_file.add(groundtruth, saved)
    assert from_file.summarize() == full.summarize()


def test_bad_input_names_the_image_and_the_field():
    groundtruth, prediction = one_pair_image([[0, 1, 1]], [0, .9, .05, .05])
    compact = compact_oi_prediction(prediction, groundtruth, "sgdet", 4)
    evaluator = OIEvaluator(num_predicates=4)
    plain = {key: value for key, value in compact.items() if not key.startswith("oi_")}
    with pytest.raises(ValueError, match="prediction of image 3: a compact prediction without OI candidates"):
        evaluator.add(groundtruth, plain, image_id=3)
    with pytest.raises(ValueError, match="image 4: field 'oi_triplets' has values outside"):
        evaluator.add(groundtruth, {**compact, "oi_triplets": np.array([[0, 5, 1]]), "oi_scores": np.ones(1)},
                      image_id=4)
    with pytest.raises(ValueError, match="image 5: field 'rel_scores' has 5 columns"):
        evaluator.add(groundtruth, {**prediction, "rel_scores": np.zeros((1, 5))}, image_id=5)
    evaluator.add(groundtruth, prediction, image_id=6)
    with pytest.raises(ValueError, match="image id 6 was already added"):
        evaluator.add(groundtruth, prediction, image_id=6)

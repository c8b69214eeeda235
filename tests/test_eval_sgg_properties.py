"""SGGEvaluator against the loop reference on random inputs, and its invariances (hypothesis)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval_random_inputs import assert_same_results, images, numpy_image, zeroshot_triplets
from rebalance_hca.evaluation import SGGEvaluator
from sgg_loop_reference import LoopReferenceEvaluator

NUM_PREDICATES = 6
KS = (1, 3, 10, 20, 100)
MODES = ("predcls", "sgcls", "sgdet")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.data_too_large])


def run(evaluator, image_list):
    for groundtruth, prediction in image_list:
        evaluator.add(groundtruth, prediction)
    return evaluator.summarize()


def fast(mode: str) -> SGGEvaluator:
    return SGGEvaluator(mode, num_predicates=NUM_PREDICATES, zeroshot_triplets=zeroshot_triplets(NUM_PREDICATES),
                        recall_ks=KS)


def reference(mode: str) -> LoopReferenceEvaluator:
    return LoopReferenceEvaluator(mode, num_predicates=NUM_PREDICATES,
                                  zeroshot_triplets=zeroshot_triplets(NUM_PREDICATES), recall_ks=KS)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(data=st.data())
def test_equals_loop_reference(mode, data):
    image_list = data.draw(st.lists(images(mode, NUM_PREDICATES), min_size=1, max_size=4))
    assert_same_results(run(fast(mode), image_list), run(reference(mode), image_list))


@pytest.mark.parametrize("mode", MODES)
def test_equals_loop_reference_on_many_pairs(mode):
    """All ordered pairs of 20 detections (380 pairs x 5 predicates): the ng top 100 is a real cut and the
    pair preselection runs; scores drawn from a few values (many ties) and from a continuum."""
    rng = np.random.default_rng(7)
    for tie_scores in (True, False):
        image_list = [numpy_image(rng, mode, NUM_PREDICATES, tie_scores=tie_scores) for _ in range(6)]
        assert_same_results(run(fast(mode), image_list), run(reference(mode), image_list))


def permuted(groundtruth: dict, prediction: dict, mode: str, rng: np.random.Generator) -> tuple[dict, dict]:
    """The same image with GT objects and predicted objects renumbered (relations and pairs follow). In
    PredCls and SGCls the predicted objects are the GT objects, so they are renumbered alike."""
    gt_order = rng.permutation(len(groundtruth["labels"]))
    gt_new_index = np.argsort(gt_order)
    new_gt = {"boxes": groundtruth["boxes"][gt_order], "labels": groundtruth["labels"][gt_order],
              "relations": np.column_stack([gt_new_index[groundtruth["relations"][:, :2]].reshape(-1, 2),
                                            groundtruth["relations"][:, 2]])}
    if mode != "sgdet":
        order, new_index = gt_order, gt_new_index
    else:
        order = rng.permutation(len(prediction["labels"]))
        new_index = np.argsort(order)
    new_prediction = {"boxes": prediction["boxes"][order], "labels": prediction["labels"][order],
                      "scores": prediction["scores"][order],
                      "rel_pair_idxs": new_index[prediction["rel_pair_idxs"]].reshape(-1, 2),
                      "rel_scores": prediction["rel_scores"]}
    return new_gt, new_prediction


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**31))
def test_renumbering_objects_changes_nothing(mode, data, seed):
    image_list = data.draw(st.lists(images(mode, NUM_PREDICATES), min_size=1, max_size=3))
    rng = np.random.default_rng(seed)
    renumbered = [permuted(groundtruth, prediction, mode, rng) for groundtruth, prediction in image_list]
    assert_same_results(run(fast(mode), renumbered), run(fast(mode), image_list), tolerance=0)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(data=st.data())
def test_appending_a_pair_after_rank_k_keeps_recall_at_k(mode, data):
    groundtruth, prediction = data.draw(images(mode, NUM_PREDICATES))
    num_objects = len(groundtruth["labels"]) if mode == "predcls" else len(prediction["labels"])
    extra_pair = data.draw(st.tuples(st.integers(0, num_objects - 1), st.integers(0, num_objects - 1)))
    extra_scores = data.draw(st.lists(st.floats(0, 1, width=32), min_size=NUM_PREDICATES, max_size=NUM_PREDICATES))
    longer = dict(prediction, rel_pair_idxs=np.vstack([prediction["rel_pair_idxs"], [extra_pair]]),
                  rel_scores=np.vstack([prediction["rel_scores"], np.array([extra_scores], dtype=np.float32)]))
    before, after = run(fast(mode), [(groundtruth, prediction)]), run(fast(mode), [(groundtruth, longer)])
    for k in KS:
        if k <= len(prediction["rel_pair_idxs"]):
            for name in ("R", "mR", "zR"):
                assert_same_results({"x": after[f"{name}@{k}"]}, {"x": before[f"{name}@{k}"]}, tolerance=0)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(data=st.data())
def test_perfect_predictions_score_one(mode, data):
    """GT pairs (one predicate each) ranked first with a one-hot score on their predicate, every other pair
    after them with zeros; extra one-relation images hold every predicate, so mR is 1 as well. SGCls and
    SGDet predict the GT boxes and labels plus a distractor. Every K >= the GT rows of an image (<= 6)."""
    image_list = data.draw(st.lists(images(mode, NUM_PREDICATES), min_size=1, max_size=3))
    groundtruths = [groundtruth for groundtruth, _ in image_list]
    two_objects = {"boxes": np.array([[0, 0, 5, 5], [7, 7, 12, 12]], dtype=np.float32), "labels": np.array([1, 2])}
    groundtruths += [dict(two_objects, relations=np.array([[0, 1, predicate]]))
                     for predicate in range(1, NUM_PREDICATES)]
    perfect_images = []
    for groundtruth in groundtruths:
        _, first = np.unique(groundtruth["relations"][:, :2], axis=0, return_index=True)
        groundtruth = dict(groundtruth, relations=groundtruth["relations"][np.sort(first)])
        perfect_images.append((groundtruth, perfect_prediction(groundtruth, with_distractor=mode != "predcls")))
    results = run(fast(mode), perfect_images)
    names = ["R", "ng-R", "mR", "ng-mR"] + (["A"] if mode != "sgdet" else [])
    for k in (10, 20, 100):
        for name in names:
            assert results[f"{name}@{k}"] == 1.0, (name, k)
        for name in ("zR", "ng-zR"):
            assert results[f"{name}@{k}"] == 1.0 or np.isnan(results[f"{name}@{k}"]), (name, k)


def perfect_prediction(groundtruth: dict, with_distractor: bool) -> dict:
    """The GT objects (plus one far-away distractor), GT pairs first with one-hot scores, then the rest."""
    relations = groundtruth["relations"]
    boxes, labels = groundtruth["boxes"], groundtruth["labels"]
    if with_distractor:
        boxes = np.vstack([boxes, [[100, 100, 110, 110]]]).astype(np.float32)
        labels = np.append(labels, 1)
    count = len(labels)
    is_gt_pair = np.zeros((count, count), dtype=bool)
    is_gt_pair[relations[:, 0], relations[:, 1]] = True
    others = np.argwhere(~is_gt_pair)
    pairs = np.vstack([relations[:, :2], others]).astype(np.int64)
    rel_scores = np.zeros((len(pairs), NUM_PREDICATES), dtype=np.float32)
    rel_scores[np.arange(len(relations)), relations[:, 2]] = 1.0
    return {"boxes": boxes, "labels": labels, "scores": np.ones(count, dtype=np.float32),
            "rel_pair_idxs": pairs, "rel_scores": rel_scores}


@SETTINGS
@given(boxes=st.lists(st.tuples(*[st.floats(-50, 600, width=32)] * 8), min_size=1, max_size=20))
def test_float32_iou_equals_sgb_torch_arithmetic(boxes):
    """The evaluator's IoU is SGB's ``boxlist_iou`` in float32 (torch, +1), bit for bit, so IoUs on the
    threshold decide the same way. SGB's formula is written out here in torch."""
    import torch

    from rebalance_hca.structures.boxes import paired_iou_legacy

    pairs = np.array(boxes, dtype=np.float32)
    box_a, box_b = torch.from_numpy(pairs[:, :4]), torch.from_numpy(pairs[:, 4:])
    area_a = (box_a[:, 2] - box_a[:, 0] + 1) * (box_a[:, 3] - box_a[:, 1] + 1)
    area_b = (box_b[:, 2] - box_b[:, 0] + 1) * (box_b[:, 3] - box_b[:, 1] + 1)
    top_left = torch.max(box_a[:, :2], box_b[:, :2])
    bottom_right = torch.min(box_a[:, 2:], box_b[:, 2:])
    wh = (bottom_right - top_left + 1).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    sgb = (inter / (area_a + area_b - inter)).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        ours = paired_iou_legacy(pairs[:, :4], pairs[:, 4:], dtype=np.float32)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, sgb, equal_nan=True)

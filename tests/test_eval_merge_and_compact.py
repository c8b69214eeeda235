"""Evaluators filled in pieces merge exactly; compact predictions and the predictions file are exact."""
from __future__ import annotations

import numpy as np
import pytest

from eval_random_inputs import assert_same_results, numpy_image, zeroshot_triplets
from rebalance_hca.evaluation import (SGGEvaluator, compact_prediction, load_predictions, predicate_confusion_matrix,
                                      save_predictions)
from sgg_loop_reference import LoopReferenceEvaluator

NUM_PREDICATES = 6
MODES = ("predcls", "sgcls", "sgdet")


def random_images(mode: str, count: int, seed: int) -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(seed)
    return [numpy_image(rng, mode, NUM_PREDICATES, num_detections=int(rng.integers(2, 18)),
                        tie_scores=bool(rng.integers(0, 2))) for _ in range(count)]


def evaluator(mode: str) -> SGGEvaluator:
    return SGGEvaluator(mode, num_predicates=NUM_PREDICATES, zeroshot_triplets=zeroshot_triplets(NUM_PREDICATES),
                        recall_ks=(5, 20, 50, 100), predicate_counts=np.arange(NUM_PREDICATES))


@pytest.mark.parametrize("mode", MODES)
def test_merged_evaluators_equal_one_evaluator_exactly(mode):
    images = random_images(mode, 30, seed=1)
    single = evaluator(mode)
    for image_id, (groundtruth, prediction) in enumerate(images):
        single.add(groundtruth, prediction, image_id=image_id)
    # three "ranks", interleaved like a distributed sampler; merged in a scrambled order, one via its state
    ranks = [evaluator(mode) for _ in range(3)]
    for image_id, (groundtruth, prediction) in enumerate(images):
        ranks[image_id % 3].add(groundtruth, prediction, image_id=image_id)
    merged = evaluator(mode)
    merged.merge(ranks[2])
    merged.merge(ranks[0].state())
    merged.merge(ranks[1])
    assert_same_results(merged.summarize(), single.summarize(), tolerance=0)


def test_merge_refuses_overlapping_images_and_different_settings():
    images = random_images("predcls", 2, seed=2)
    first, second = evaluator("predcls"), evaluator("predcls")
    first.add(*images[0], image_id=0)
    second.add(*images[1], image_id=0)
    with pytest.raises(ValueError, match="image ids added to both"):
        first.merge(second)
    with pytest.raises(ValueError, match="mode differs"):
        first.merge(evaluator("sgcls"))
    with pytest.raises(ValueError, match="zero-shot"):
        first.merge(SGGEvaluator("predcls", num_predicates=NUM_PREDICATES, recall_ks=(5, 20, 50, 100)))
    with pytest.raises(ValueError, match="already added"):
        first.add(*images[1], image_id=0)


@pytest.mark.parametrize("mode", MODES)
def test_compact_predictions_evaluate_like_full_ones(mode, tmp_path):
    """The stored file holds far less than the full predictions and gives the same numbers: SGGEvaluator
    evaluates full predictions through the same compaction, so equal up to the last bit; the loop reference
    on the full predictions agrees too."""
    images = random_images(mode, 25, seed=3)
    groundtruths = [groundtruth for groundtruth, _ in images]
    full = [prediction for _, prediction in images]
    path = tmp_path / "predictions.npz"
    save_predictions(path, full, mode, NUM_PREDICATES, groundtruths, image_ids=range(100, 125),
                     metadata={"split": "test", "dataset_size": 125})
    saved = load_predictions(path)
    assert saved["mode"] == mode and saved["max_k"] == 100 and saved["metadata"]["split"] == "test"
    assert saved["image_ids"].tolist() == list(range(100, 125))

    from_full, from_file = evaluator(mode), evaluator(mode)
    reference = LoopReferenceEvaluator(mode, NUM_PREDICATES, zeroshot_triplets(NUM_PREDICATES),
                                       recall_ks=(5, 20, 50, 100))
    for groundtruth, prediction, stored in zip(groundtruths, full, saved["predictions"]):
        from_full.add(groundtruth, prediction)
        from_file.add(groundtruth, stored)
        reference.add(groundtruth, prediction)
    assert_same_results(from_file.summarize(), from_full.summarize(), tolerance=0)
    assert_same_results(from_file.summarize(), reference.summarize())
    if mode != "sgdet":
        assert np.array_equal(predicate_confusion_matrix(groundtruths, saved["predictions"], NUM_PREDICATES, mode),
                              predicate_confusion_matrix(groundtruths, full, NUM_PREDICATES, mode))


def test_predictions_file_is_compact_for_sgdet(tmp_path):
    """5 SGDet images with 80 detections, 6,320 ranked pairs and 51 predicates: 6.4 MB of float32
    rel_scores; the file keeps ~100 pairs, 100 ng entries and the 80 objects per image."""
    rng = np.random.default_rng(6)
    groundtruths, predictions = [], []
    for _ in range(5):
        groundtruth, prediction = numpy_image(rng, "sgdet", 51, num_detections=80, tie_scores=False)
        groundtruths.append(groundtruth)
        predictions.append(prediction)
    full_bytes = sum(prediction["rel_scores"].nbytes for prediction in predictions)
    path = tmp_path / "sgdet.npz"
    save_predictions(path, predictions, "sgdet", 51, groundtruths)
    assert full_bytes > 6_000_000 and path.stat().st_size < full_bytes / 200
    full_results, file_results = SGGEvaluator("sgdet"), SGGEvaluator("sgdet")
    for groundtruth, prediction, stored in zip(groundtruths, predictions, load_predictions(path)["predictions"]):
        full_results.add(groundtruth, prediction)
        file_results.add(groundtruth, stored)
    assert_same_results(file_results.summarize(), full_results.summarize(), tolerance=0)


def test_compact_prediction_keeps_exactly_the_reachable_pairs():
    """PredCls, max_k 2, pairs ranked (2,0) (0,1) (1,2) (0,2) (1,0); GT pairs (0,2) and (1,0).
    Kept: ranks 0 and 1 (top K) and ranks 3 and 4 (GT pairs); rank 2 is unreachable."""
    groundtruth = {"boxes": np.zeros((3, 4), dtype=np.float32), "labels": np.array([1, 2, 3]),
                   "relations": np.array([[0, 2, 1], [1, 0, 2]])}
    rel_scores = np.array([[0, .5, .4], [0, .1, .9], [0, .3, .2], [0, .6, .7], [0, .8, .1]], dtype=np.float32)
    prediction = {"rel_pair_idxs": np.array([[2, 0], [0, 1], [1, 2], [0, 2], [1, 0]]), "rel_scores": rel_scores}
    compact = compact_prediction(prediction, groundtruth, "predcls", 3, max_k=2)
    assert compact["pair_ranks"].tolist() == [0, 1, 3, 4]
    assert compact["pair_idxs"].tolist() == [[2, 0], [0, 1], [0, 2], [1, 0]]
    assert compact["pair_labels"].tolist() == [1, 2, 2, 1]
    assert compact["pair_scores"].tolist() == pytest.approx([.5, .9, .7, .8])
    # ng: entries sorted .9 (0,1,2) .8 (1,0,1) .7 (0,2,2) .6 (0,2,1) .5 (2,0,1) .4 (2,0,2) .3 .2 .1 .1
    assert compact["ng_triplets"][:6].tolist() == [[0, 1, 2], [1, 0, 1], [0, 2, 2], [0, 2, 1], [2, 0, 1], [2, 0, 2]]
    assert compact["num_pairs"] == 5 and len(compact["ng_triplets"]) == 10


def test_compact_prediction_for_a_smaller_k_is_refused():
    groundtruth, prediction = random_images("predcls", 1, seed=4)[0]
    compact = compact_prediction(prediction, groundtruth, "predcls", NUM_PREDICATES, max_k=50)
    with pytest.raises(ValueError, match="K=50.*K=100"):
        evaluator("predcls").add(groundtruth, compact)
    with pytest.raises(ValueError, match="mode 'predcls'.*'sgcls'"):
        evaluator("sgcls").add(groundtruth, compact)


def test_load_predictions_names_the_file_on_bad_input(tmp_path):
    not_npz = tmp_path / "broken.npz"
    not_npz.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="broken.npz"):
        load_predictions(not_npz)
    other = tmp_path / "other.npz"
    np.savez(other, something=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz: not a rebalance_hca.sgg_predictions file"):
        load_predictions(other)
    with pytest.raises(ValueError, match="needs its groundtruth"):
        save_predictions(tmp_path / "x.npz", [random_images("sgdet", 1, seed=5)[0][1]], "sgdet", NUM_PREDICATES)
    truncated = tmp_path / "truncated.npz"
    for data in (other.read_bytes()[:len(other.read_bytes()) // 2], b""):
        truncated.write_bytes(data)
        with pytest.raises(ValueError, match=f"{truncated}: not a readable predictions file"):
            load_predictions(truncated)

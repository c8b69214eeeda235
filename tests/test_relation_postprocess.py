"""Test-time post-processing on hand-worked examples
(docs/reference.md#per-class-nms-decoding, #test-time-post-processing) and the frequency bias lookup."""
from __future__ import annotations

import math

import numpy as np
import torch

from rebalance_hca.modeling.relation_head.classifier import FrequencyBias
from rebalance_hca.modeling.relation_head.object_labels import nms_decode_labels, one_hot_logits
from rebalance_hca.modeling.relation_head.postprocess import relation_predictions
from rebalance_hca.modeling.relation_head.predictors.frequency import conditional_predicate_log_frequency


def _logits_from_probabilities(probabilities: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probabilities).log()


def test_sgdet_nms_decoding_suppresses_overlapping_boxes_of_the_same_class():
    # classes: 0 background, 1 "man", 2 "dog". Boxes 0 and 1 overlap (IoU (+1) = 81/119 = 0.68) for both
    # classes, box 2 is far away. Probabilities (rows = boxes):
    #   box 0: bg .1, man .6, dog .3;  box 1: bg .1, man .5, dog .4;  box 2: bg .2, man .7, dog .1
    # Step 1: global max .7 -> box 2 = man (box 2 overlaps nobody). Step 2: .6 -> box 0 = man, which zeroes
    # "man" of box 1 (overlap 0.68 >= 0.5). Step 3: box 1's best left is dog .4 -> box 1 = dog.
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [1.0, 1.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    boxes_per_cls = boxes[:, None, :].expand(3, 3, 4).clone()
    logits = _logits_from_probabilities([[0.1, 0.6, 0.3], [0.1, 0.5, 0.4], [0.2, 0.7, 0.1]])
    assert nms_decode_labels(logits, boxes_per_cls, 0.5).tolist() == [1, 2, 1]
    # with a threshold above the overlap nothing is suppressed: every box keeps its argmax
    assert nms_decode_labels(logits, boxes_per_cls, 0.7).tolist() == [1, 1, 1]


def test_postprocessor_variant_keeps_first_label_and_background_zero():
    # One box whose only foreground probability is suppressed to 0 by a better box of the same class.
    # Context variant (background -1, overwrite): the last argmax over [-1, 0] is class 1.
    # Post-processor variant (background 0, first assignment wins): the argmax over [0, 0] is background
    # at the second step, but box 1 was never assigned before, so it is written: label 0.
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 9.0]])
    boxes_per_cls = boxes[:, None, :].expand(2, 2, 4).clone()
    logits = torch.tensor([[-20.0, 20.0], [-20.0, 10.0]])
    assert nms_decode_labels(logits, boxes_per_cls, 0.5).tolist() == [1, 1]
    assert nms_decode_labels(logits, boxes_per_cls, 0.5, background_value=0.0, first_assignment_wins=True).tolist() \
        == [1, 0]


def test_relation_predictions_rank_by_rel_score_times_object_scores():
    # SGCls-like: object probabilities (background zeroed) give scores .8, .5, .9 (labels 1, 2, 1).
    object_logits = _logits_from_probabilities([[0.1, 0.8, 0.1], [0.3, 0.2, 0.5], [0.05, 0.9, 0.05]])
    boxes = torch.tensor([[0.0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 7, 7]])
    pairs = torch.tensor([[0, 1], [1, 2], [2, 0]])
    # relation probabilities over (bg, p1, p2): best foreground .6 (p2), .7 (p1), .3 (p1)
    relation_logits = _logits_from_probabilities([[0.2, 0.2, 0.6], [0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    result = relation_predictions(object_logits, boxes, None, pairs, relation_logits, "sgcls", 0.5)
    assert result["labels"].tolist() == [1, 2, 1]
    torch.testing.assert_close(result["scores"], torch.tensor([0.8, 0.5, 0.9]))
    # triplets: (0,1) .6*.8*.5 = .24; (1,2) .7*.5*.9 = .315; (2,0) .3*.9*.8 = .216
    assert result["rel_pair_idxs"].tolist() == [[1, 2], [0, 1], [2, 0]]
    torch.testing.assert_close(result["triplet_scores"], torch.tensor([0.315, 0.24, 0.216]))
    assert result["rel_labels"].tolist() == [1, 2, 1]
    torch.testing.assert_close(result["rel_scores"].sum(1), torch.ones(3))


def test_predcls_objects_keep_gt_labels_with_score_one():
    labels = torch.tensor([3, 1])
    result = relation_predictions(one_hot_logits(labels, 4), torch.zeros(2, 4), None, torch.tensor([[0, 1], [1, 0]]),
                                  torch.zeros(2, 5), "predcls", 0.5)
    assert result["labels"].tolist() == [3, 1] and result["scores"].tolist() == [1.0, 1.0]


def test_sgdet_output_boxes_are_the_regressions_of_the_refined_class():
    boxes_per_cls = torch.tensor([[[0.0, 0, 1, 1], [0, 0, 4, 4], [0, 0, 8, 8]]])
    object_logits = _logits_from_probabilities([[0.1, 0.2, 0.7]])
    result = relation_predictions(object_logits, boxes_per_cls[:, 1], boxes_per_cls, torch.zeros(0, 2, dtype=torch.long),
                                  torch.zeros(0, 3), "sgdet", 0.5)
    assert result["labels"].tolist() == [2]
    assert result["boxes"].tolist() == [[0, 0, 8, 8]]
    torch.testing.assert_close(result["scores"], torch.tensor([0.7]))


def test_frequency_bias_looks_up_subject_object_rows_and_drops_out_in_training():
    pred_dist = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3)
    bias = FrequencyBias(pred_dist, dropout=0.3).eval()
    # (subject 1, object 0) -> row 1 * 2 + 0 = 2 -> [6, 7, 8]
    assert bias(torch.tensor([[1, 0], [0, 1]])).tolist() == [[6.0, 7.0, 8.0], [3.0, 4.0, 5.0]]
    bias.train()
    torch.manual_seed(0)
    dropped = bias(torch.tensor([[1, 1]] * 200))
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], (torch.tensor([9.0, 10.0, 11.0]).expand(200, 3) / 0.7)[kept])
    assert 0.2 < 1 - kept.float().mean().item() < 0.4


def test_frequency_baseline_distribution_falls_back_to_the_overall_frequency():
    counts = np.zeros((2, 2, 3), dtype=np.int64)
    counts[1, 1, 1:] = [6, 2]   # seen pair: predicate 1 six times, predicate 2 twice
    log_frequency = conditional_predicate_log_frequency(counts)
    # add-one smoothed prior [7, 3] / 10; seen pair: (6 + .7) / 9, (2 + .3) / 9; unseen pair: the prior
    torch.testing.assert_close(log_frequency[1, 1, 1:].exp(), torch.tensor([6.7 / 9, 2.3 / 9]))
    torch.testing.assert_close(log_frequency[0, 1, 1:].exp(), torch.tensor([0.7, 0.3]))
    assert math.isclose(torch.softmax(log_frequency[0, 0], 0)[0].item(), 0.0, abs_tol=1e-12)

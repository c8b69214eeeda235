"""Test-time post-processing of one image (SGB's relation ``PostProcessor``,
docs/reference.md#test-time-post-processing).

Objects: PredCls / SGCls take softmax(object_logits) with the background zeroed, label and score = argmax
and max over 1..C-1 (PredCls: the GT label, score 1), box = the input box. SGDet decodes the labels by
per-class NMS (``obj_prediction_nms``), score = softmax(object_logits)[label], box = boxes_per_cls[label].
Relations: p = softmax(relation_logits); rel_score = max p[1:]; triplet score = rel_score · score_s · score_o.
Every pair is kept, ranked by triplet score (descending, stable on ties), in the prediction format that
``rebalance_hca.evaluation.SGGEvaluator.add`` takes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .object_labels import nms_decode_labels


def object_predictions(object_logits: Tensor, boxes: Tensor, boxes_per_cls: Tensor | None, mode: str,
                       nms_threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """(boxes (N, 4), labels (N,) int64, scores (N,)) of one image's objects from object_logits (N, C)."""
    probabilities = F.softmax(object_logits.float(), dim=1)
    if mode == "sgdet":
        labels = nms_decode_labels(object_logits, boxes_per_cls, nms_threshold, background_value=0.0,
                                   first_assignment_wins=True)
        index = torch.arange(len(labels), device=labels.device)
        return boxes_per_cls[index, labels], labels, probabilities[index, labels]
    probabilities[:, 0] = 0.0
    scores, labels = probabilities.max(dim=1)
    return boxes, labels, scores


def relation_predictions(object_logits: Tensor, boxes: Tensor, boxes_per_cls: Tensor | None, pairs: Tensor,
                         relation_logits: Tensor, mode: str, nms_threshold: float) -> dict[str, Tensor]:
    """One image's prediction: pairs (R, 2) local indices, relation_logits (R, P) ->
    {"boxes" (N, 4), "labels" (N,), "scores" (N,), "rel_pair_idxs" (R, 2) ranked, "rel_scores" (R, P) the
    softmax, ranked, "rel_labels" (R,) argmax over 1..P-1, "triplet_scores" (R,) descending}."""
    boxes, labels, scores = object_predictions(object_logits, boxes, boxes_per_cls, mode, nms_threshold)
    rel_scores = F.softmax(relation_logits.float(), dim=1)
    best_score, best_label = rel_scores[:, 1:].max(dim=1)
    triplet_scores = best_score * scores[pairs[:, 0]] * scores[pairs[:, 1]] if len(pairs) else best_score
    order = torch.sort(triplet_scores, descending=True, stable=True).indices
    return {"boxes": boxes, "labels": labels, "scores": scores, "rel_pair_idxs": pairs[order],
            "rel_scores": rel_scores[order], "rel_labels": best_label[order] + 1, "triplet_scores": triplet_scores[order]}

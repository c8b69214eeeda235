"""The context contract (inputs, outputs) and the base every GloVe-embedding context shares
(docs/reference.md#object-context)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..object_labels import check_mode, label_embedding, one_hot_logits, refine_object_labels


@dataclass
class ContextInputs:
    """The objects of a batch of B images, flat over images (N = ΣN_b), C object classes, D box features.

    roi_features: (N, D) the relation head's box features.
    box_info: (N, 9) the box encoding of docs/reference.md#box-encoding.
    num_objects: N_b per image.
    labels: (N,) int64 GT labels in PredCls, else None.
    detector_logits: (N, C) the detector's class logits in SGCls / SGDet, else None.
    boxes_per_cls: (N, C, 4) every class's regressed box in SGDet, else None (used by SGDet test decoding).
    boxes: (N, 4) xyxy boxes in the detector's input frame (resized-image pixels).
    image_sizes: (height, width) of each of the B images in that frame.
    target_labels: (N,) int64 the objects' training targets in SGCls and SGDet (the GT label; SGDet: the
    matched GT's label, 0 for none), given in training only, for decoders trained with teacher forcing
    (SGB's Motifs); None otherwise.
    relation_adjacency: in training, for a predictor that asks for it (``uses_relation_adjacency``), per
    image an (N_b, N_b) int64 matrix, 1 where objects i and j are related in either direction (SGB's
    ``rel_binarys``, see ``RelationPairSampler.relation_adjacency``), else None.
    pairs: for a predictor whose context is computed over pairs (``uses_pair_context``, IMP's message
    passing), (R, 2) int64 flat object indices (subject, object) of every pair the head will classify: the
    sampled pairs in training, every ordered pair of each image at test time; else None.
    union_features: (R, D) the union features of ``pairs`` when ``pairs`` is given, else None.
    The relation head always gives ``boxes`` and ``image_sizes``; they default to None only so that a
    context that needs neither can be called alone (tests, benchmarks).
    """

    roi_features: Tensor
    box_info: Tensor
    num_objects: list[int]
    labels: Tensor | None = None
    detector_logits: Tensor | None = None
    boxes_per_cls: Tensor | None = None
    boxes: Tensor | None = None
    image_sizes: list[tuple[int, int]] | None = None
    target_labels: Tensor | None = None
    relation_adjacency: list[Tensor] | None = None
    pairs: Tensor | None = None
    union_features: Tensor | None = None


@dataclass
class ObjectContext:
    """A context's output for N objects, hidden size d.

    object_logits: (N, C) refined class logits (one-hot ±1000 in PredCls; ``obj_dists`` in SGB).
    object_labels: (N,) int64 refined labels (``obj_preds``): GT in PredCls.
    edge_context: (N, d) per-object features from which pair representations are built.
    """

    object_logits: Tensor
    object_labels: Tensor
    edge_context: Tensor


def glove_embedding(vectors: Tensor) -> nn.Embedding:
    """A trainable embedding (C, embed_dim) initialised with GloVe ``vectors`` (docs/reference.md#glove-embeddings)."""
    embedding = nn.Embedding(vectors.shape[0], vectors.shape[1])
    with torch.no_grad():
        embedding.weight.copy_(vectors)
    return embedding


def box_embedding(dropout: float = 0.1) -> nn.Sequential:
    """SGB's ``bbox_embed``: 9-d box encoding -> 128-d (Linear 9->32, ReLU, Dropout, Linear 32->128, ReLU,
    Dropout)."""
    return nn.Sequential(nn.Linear(9, 32), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(32, 128), nn.ReLU(inplace=True), nn.Dropout(dropout))


BOX_EMBED_DIM = 128


class ContextBase(nn.Module):
    """What every context with GloVe label embeddings shares (SGB's TransformerContext, RB's SHA_Context).

    mode: "predcls" | "sgcls" | "sgdet". object_vectors: (C, embed_dim) GloVe vectors of the C object classes
    (background first), copied into two trainable embeddings: ``obj_embed1`` feeds the object stream,
    ``obj_embed2`` embeds the refined labels for the edge stream. hidden_dim: d. nms_threshold:
    TEST.RELATION.LATER_NMS_PREDICTION_THRES for SGDet test-time label decoding. ``out_obj`` (d -> C) refines
    the labels in SGCls / SGDet; PredCls, whose labels are given, has none.
    """

    def __init__(self, mode: str, object_vectors: Tensor, hidden_dim: int, nms_threshold: float) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.nms_threshold = nms_threshold
        self.num_classes, self.embed_dim = object_vectors.shape
        self.obj_embed1 = glove_embedding(object_vectors)
        self.obj_embed2 = glove_embedding(object_vectors)
        self.bbox_embed = box_embedding()
        self.out_obj = nn.Linear(hidden_dim, self.num_classes) if self.mode != "predcls" else None

    def label_vectors(self, inputs: ContextInputs) -> Tensor:
        """(N, embed_dim) textual input: obj_embed1 of the GT labels, or weighted by the detector's softmax."""
        return label_embedding(self.obj_embed1, inputs.labels, inputs.detector_logits)

    def predict_objects(self, object_features: Tensor, inputs: ContextInputs) -> tuple[Tensor, Tensor]:
        """(object_logits (N, C), object_labels (N,)): the GT one-hot and labels in PredCls, else
        out_obj(object_features) and its refined labels (docs/reference.md#object-context)."""
        if self.out_obj is None:
            return one_hot_logits(inputs.labels, self.num_classes), inputs.labels
        logits = self.out_obj(object_features)
        labels = refine_object_labels(logits, inputs.num_objects, self.mode, self.training, inputs.boxes_per_cls,
                                      self.nms_threshold)
        return logits, labels

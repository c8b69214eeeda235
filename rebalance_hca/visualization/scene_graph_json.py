"""The scene graph of one image as a JSON document (tools/demo.py's output; schema in docs/demo.md).

A document holds the image (source, original width and height), the model, the objects (box in the original
image frame, class name and id, detector score) and the top triplets (subject and object as indices into
``objects``, predicate name and id, its probability and the triplet score), best first.
``SCENE_GRAPH_SCHEMA`` is the same schema as JSON Schema (draft 2020-12), for validators in other languages.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..utils.atomic import atomic_write

SCENE_GRAPH_FORMAT = "rebalance_hca.scene_graph"
SCENE_GRAPH_VERSION = 1

_NUMBER = {"type": "number"}
_INDEX = {"type": "integer", "minimum": 0}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
SCENE_GRAPH_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ReBalance-HCA scene graph of one image",
    "type": "object",
    "required": ["format", "version", "image", "model", "objects", "relations"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": SCENE_GRAPH_FORMAT},
        "version": {"const": SCENE_GRAPH_VERSION},
        "image": {
            "type": "object", "required": ["source", "width", "height"], "additionalProperties": False,
            "properties": {"source": {"type": "string"}, "width": {"type": "integer", "minimum": 1},
                           "height": {"type": "integer", "minimum": 1}}},
        "model": {
            "type": "object", "required": ["mode", "weights"], "additionalProperties": False,
            "properties": {"mode": {"const": "sgdet"}, "weights": {"type": "string"}}},
        "objects": {"type": "array", "items": {
            "type": "object", "required": ["id", "label", "label_id", "score", "box"], "additionalProperties": False,
            "properties": {"id": _INDEX, "label": {"type": "string"}, "label_id": {"type": "integer", "minimum": 1},
                           "score": _PROBABILITY,
                           "box": {"type": "array", "items": _NUMBER, "minItems": 4, "maxItems": 4}}}},
        "relations": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["rank", "subject", "object", "predicate", "predicate_id", "predicate_score", "score"],
            "properties": {"rank": _INDEX, "subject": _INDEX, "object": _INDEX, "predicate": {"type": "string"},
                           "predicate_id": {"type": "integer", "minimum": 1}, "predicate_score": _PROBABILITY,
                           "score": _PROBABILITY}}},
    },
}


@dataclass(frozen=True)
class SelectionOptions:
    """What a document keeps. max_triplets: the top N triplets; score_threshold: their least triplet score;
    object_threshold: the least detector score of an object that no kept triplet uses (objects of kept
    triplets are always listed)."""

    max_triplets: int = 10
    score_threshold: float = 0.0
    object_threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.max_triplets < 0:
            raise ValueError(f"the maximum number of triplets must be >= 0, got {self.max_triplets}")
        for name in ("score_threshold", "object_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


def scene_graph_document(prediction: dict[str, np.ndarray], source: str, width: int, height: int,
                         class_names: Sequence[str], predicate_names: Sequence[str], weights: str,
                         options: SelectionOptions) -> dict[str, Any]:
    """The JSON document of one image's SGDet prediction.

    prediction: numpy arrays in the original (width, height) frame: "boxes" (k, 4) xyxy, "labels" (k,),
        "scores" (k,), "rel_pair_idxs" (p, 2) ranked best first, "rel_labels" (p,) predicate 1..P-1,
        "rel_scores" (p, P) predicate probabilities, "triplet_scores" (p,) descending.
    """
    triplet_scores = np.asarray(prediction["triplet_scores"], dtype=np.float64)
    kept = np.flatnonzero(triplet_scores >= options.score_threshold)[:options.max_triplets]
    pairs = np.asarray(prediction["rel_pair_idxs"], dtype=np.int64)[kept].reshape(-1, 2)
    scores = np.asarray(prediction["scores"], dtype=np.float64)
    listed = np.union1d(np.flatnonzero(scores >= options.object_threshold), pairs.ravel())
    position = {int(index): rank for rank, index in enumerate(listed.tolist())}
    boxes, labels = np.asarray(prediction["boxes"], dtype=np.float64), np.asarray(prediction["labels"])
    objects = [{"id": position[int(index)], "label": class_names[int(labels[index])],
                "label_id": int(labels[index]), "score": _probability(scores[index]),
                "box": [round(float(value), 2) for value in boxes[index]]} for index in listed]
    rel_labels = np.asarray(prediction["rel_labels"], dtype=np.int64)[kept]
    rel_scores = np.asarray(prediction["rel_scores"], dtype=np.float64)[kept]
    relations = [{"rank": rank, "subject": position[int(subject)], "object": position[int(obj)],
                  "predicate": predicate_names[int(label)], "predicate_id": int(label),
                  "predicate_score": _probability(rel_scores[rank, label]),
                  "score": _probability(triplet_scores[kept[rank]])}
                 for rank, ((subject, obj), label) in enumerate(zip(pairs.tolist(), rel_labels.tolist()))]
    return {"format": SCENE_GRAPH_FORMAT, "version": SCENE_GRAPH_VERSION,
            "image": {"source": source, "width": int(width), "height": int(height)},
            "model": {"mode": "sgdet", "weights": weights}, "objects": objects, "relations": relations}


def _probability(value: float) -> float:
    """A score as a JSON number in [0, 1] (float32 rounding can pass 1 by an ulp)."""
    return round(min(max(float(value), 0.0), 1.0), 6)


def write_scene_graph(path: str, document: dict[str, Any]) -> None:
    """Write a document as indented JSON, atomically."""
    with atomic_write(path, binary=False) as stream:
        json.dump(document, stream, indent=2, allow_nan=False)
        stream.write("\n")

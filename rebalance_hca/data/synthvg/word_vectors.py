"""GloVe-format word vectors for SynthVG's vocabulary, built from hidden semantic features.

Each word is the sum of the vectors of its features (person, animal, vehicle, support, posture, ...) plus a
small word-specific part, so that related words are close (man ~ woman, chair ~ bench, sitting ~ standing)
as in real GloVe. The table is fixed (it does not depend on the dataset seed), like the real file.
"""
from __future__ import annotations

import numpy as np

from .vocabulary import ATTRIBUTES, OBJECT_CLASSES, PREDICATES

GLOVE_DIM = 200
GLOVE_FILE_NAME = f"glove.6B.{GLOVE_DIM}d.txt"
_GLOVE_SEED = 6_000_200
_FEATURE_SCALE = 0.45
_WORD_SCALE = 0.3

WORD_FEATURES: dict[str, tuple[str, ...]] = {
    # object classes
    "man": ("person", "male"), "woman": ("person", "female"), "child": ("person", "young"),
    "dog": ("animal", "pet"), "horse": ("animal", "ridable"), "bird": ("animal", "sky"),
    "bike": ("vehicle", "ridable"), "car": ("vehicle", "street"), "chair": ("furniture", "seat"),
    "bench": ("furniture", "seat"), "table": ("furniture", "food"), "cup": ("tableware", "food"),
    "plate": ("tableware", "food"), "bottle": ("tableware", "container"), "bag": ("container", "carry"),
    "hat": ("clothing",), "building": ("architecture", "street"), "window": ("architecture", "glassy"),
    "sign": ("architecture", "text"), "tree": ("plant",), "grass": ("plant", "ground"),
    "road": ("ground", "street"),
    # predicate words
    "above": ("vertical", "spatial"), "under": ("vertical", "spatial"), "behind": ("depth", "spatial"),
    "front": ("depth", "spatial"), "near": ("spatial",), "on": ("support", "spatial"), "in": ("containment",),
    "of": ("part",), "part": ("part",), "has": ("possession",), "holding": ("possession", "carry"),
    "carrying": ("possession", "carry", "motion"), "wearing": ("possession", "clothing"),
    "riding": ("ridable", "motion", "support"), "sitting": ("posture", "seat", "support"),
    "standing": ("posture", "support"), "walking": ("posture", "motion"), "laying": ("posture", "support"),
    "lying": ("posture",), "parked": ("vehicle", "support"), "growing": ("plant", "support"),
    "mounted": ("support", "architecture"),
    # attributes
    **{name: ("colour",) for name in ("black", "blue", "brown", "green", "grey", "orange", "pink", "purple",
                                      "red", "white", "yellow")},
    "checkered": ("texture", "clothing"), "dotted": ("texture", "clothing"), "striped": ("texture", "clothing"),
    "wooden": ("texture", "material", "furniture"), "brick": ("texture", "material", "architecture"),
    "leafy": ("texture", "plant"), "glass": ("material", "glassy"), "metal": ("material", "vehicle"),
    # distractors: real-looking words outside the vocabulary
    "the": ("function",), "a": ("function",), "and": ("function",), "is": ("function",),
    "cat": ("animal", "pet"), "cow": ("animal",), "sheep": ("animal",), "bus": ("vehicle", "street"),
    "train": ("vehicle",), "boat": ("vehicle",), "sofa": ("furniture", "seat"), "bowl": ("tableware", "food"),
    "fork": ("tableware", "food"), "shirt": ("clothing",), "shoe": ("clothing",), "jacket": ("clothing",),
    "wall": ("architecture",), "door": ("architecture",), "roof": ("architecture",), "flower": ("plant",),
    "leaf": ("plant",), "street": ("ground", "street"), "sidewalk": ("ground", "street"), "sky": ("sky",),
    "cloud": ("sky",), "kite": ("sky", "toy"), "ball": ("toy",), "wheel": ("vehicle", "part"),
    "between": ("spatial",), "along": ("spatial",), "watching": ("perception",), "looking": ("perception",),
}


def glove_words() -> list[str]:
    """Every single word of the class, predicate and attribute names, then the distractors, in a fixed order."""
    words: list[str] = []
    for name in OBJECT_CLASSES + PREDICATES + ATTRIBUTES:
        for word in name.split(" "):
            if word not in words:
                words.append(word)
    missing = [word for word in words if word not in WORD_FEATURES]
    if missing:
        raise KeyError(f"SynthVG words without semantic features: {missing}")
    return words + [word for word in WORD_FEATURES if word not in words]


def glove_vectors() -> tuple[list[str], np.ndarray]:
    """(words, (V, GLOVE_DIM) float32 vectors)."""
    rng = np.random.default_rng(_GLOVE_SEED)
    features = sorted({feature for names in WORD_FEATURES.values() for feature in names})
    feature_vectors = dict(zip(features, rng.normal(0.0, _FEATURE_SCALE, (len(features), GLOVE_DIM))))
    words = glove_words()
    vectors = np.stack([
        sum(feature_vectors[feature] for feature in WORD_FEATURES[word]) + rng.normal(0.0, _WORD_SCALE, GLOVE_DIM)
        for word in words
    ]).astype(np.float32)
    return words, vectors


def glove_text() -> str:
    """The file content: one 'word v1 ... v200' line per word, values with five decimals."""
    words, vectors = glove_vectors()
    return "".join(word + " " + " ".join(f"{value:.5f}" for value in row) + "\n" for word, row in zip(words, vectors))

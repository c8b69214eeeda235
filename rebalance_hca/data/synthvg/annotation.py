"""The simulated annotator: sparse, one direction per pair, and biased towards general predicates like VG's.

For every unordered object pair with a true relation, the annotator considers one direction (both directions
true: a fair coin picks one), labels it with probability ``ANNOTATION_KEEP_RATE``, names its most specific
true predicate, but writes the general form of an informative predicate ("on" for "sitting on") with
probability ``GENERAL_FOR_INFORMATIVE_RATE``. A labelled pair with another true predicate gets a second row
naming it with probability ``DUPLICATE_RELATION_RATE`` (VG's duplicate pairs, which the loader filters).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .relations import canonical_predicates
from .vocabulary import GENERAL_OF_INFORMATIVE, PREDICATE_PRIORITY, PREDICATE_TO_ID

ANNOTATION_KEEP_RATE = 0.5
GENERAL_FOR_INFORMATIVE_RATE = 0.6
DUPLICATE_RELATION_RATE = 0.08


@dataclass
class Annotation:
    """The relations written for one image (R rows) and what they were derived from.

    relations: (R, 3) int64 [subject index, object index, written predicate id].
    true_predicates: (R,) int64 id of the true predicate behind each row (before the general substitution).
    duplicates: (R,) bool, True for the second row of a pair.
    num_candidates: pairs the annotator considered (one direction per unordered pair with a true relation).
    """

    relations: np.ndarray
    true_predicates: np.ndarray
    duplicates: np.ndarray
    num_candidates: int

    @classmethod
    def empty(cls, num_candidates: int = 0) -> "Annotation":
        return cls(np.zeros((0, 3), np.int64), np.zeros(0, np.int64), np.zeros(0, bool), num_candidates)


def annotate(rng: np.random.Generator, truth: dict[str, np.ndarray]) -> Annotation:
    """Label a scene's true relations ({predicate: (n, n) bool}) the way a VG annotator would."""
    canonical = canonical_predicates(truth)
    n = canonical.shape[0]
    upper_s, upper_o = np.triu_indices(n, k=1)
    forward, backward = canonical[upper_s, upper_o] >= 0, canonical[upper_o, upper_s] >= 0
    coin = rng.random(upper_s.size) < 0.5
    take_forward = forward & (~backward | coin)
    take_backward = backward & (~forward | ~coin)
    subjects = np.concatenate([upper_s[take_forward], upper_o[take_backward]])
    objects = np.concatenate([upper_o[take_forward], upper_s[take_backward]])
    order = np.lexsort((objects, subjects))
    subjects, objects = subjects[order], objects[order]
    keep = rng.random(subjects.size) < ANNOTATION_KEEP_RATE
    general_draw = rng.random(subjects.size)
    duplicate_draw = rng.random(subjects.size)

    rows, true_ids, duplicates = [], [], []
    for k in np.flatnonzero(keep):
        s, o = subjects[k], objects[k]
        true_name = PREDICATE_PRIORITY[canonical[s, o]]
        written = true_name
        if true_name in GENERAL_OF_INFORMATIVE and general_draw[k] < GENERAL_FOR_INFORMATIVE_RATE:
            written = GENERAL_OF_INFORMATIVE[true_name]
        rows.append((s, o, PREDICATE_TO_ID[written]))
        true_ids.append(PREDICATE_TO_ID[true_name])
        duplicates.append(False)
        others = [name for name in PREDICATE_PRIORITY if truth[name][s, o] and name != written]
        if others and duplicate_draw[k] < DUPLICATE_RELATION_RATE:
            second = others[int(rng.integers(len(others)))]
            rows.append((s, o, PREDICATE_TO_ID[second]))
            true_ids.append(PREDICATE_TO_ID[second])
            duplicates.append(True)
    if not rows:
        return Annotation.empty(int(subjects.size))
    shuffle = rng.permutation(len(rows))
    return Annotation(
        relations=np.array(rows, dtype=np.int64)[shuffle],
        true_predicates=np.array(true_ids, dtype=np.int64)[shuffle],
        duplicates=np.array(duplicates, dtype=bool)[shuffle],
        num_candidates=int(subjects.size),
    )

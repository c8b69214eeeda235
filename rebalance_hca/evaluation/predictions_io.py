"""The predictions file: one compact, versioned ``.npz`` per split (format in docs/evaluation.md).

Every image's prediction is stored in the compact form of :func:`compact_prediction` (exactly what the
metrics can reach), the per-image arrays concatenated with per-image counts (CSR style); predictions in
the OI compact form (:func:`compact_oi_prediction`) also keep their "oi_triplets" and "oi_scores". The file is
plain numpy (``np.load`` reads it without torch or the model) and is written atomically.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..utils.atomic import atomic_write
from ._arrays import to_numpy
from .compaction import MODES, NG_TOP_ENTRIES, check_compact_prediction, compact_prediction, is_compact
from .oi import is_oi_compact

__all__ = ["PREDICTIONS_FORMAT", "PREDICTIONS_VERSION", "save_predictions", "load_predictions"]

PREDICTIONS_FORMAT = "rebalance_hca.sgg_predictions"
PREDICTIONS_VERSION = 1
# per-image ragged fields: (name, count field, dtype, trailing shape)
_RAGGED = (("boxes", "object_counts", np.float32, (4,)), ("labels", "object_counts", np.int64, ()),
           ("scores", "object_counts", None, ()), ("pair_idxs", "pair_counts", np.int64, (2,)),
           ("pair_ranks", "pair_counts", np.int64, ()), ("pair_labels", "pair_counts", np.int64, ()),
           ("pair_scores", "pair_counts", None, ()), ("ng_triplets", "ng_counts", np.int64, (3,)))
# optional: the OI protocol's candidates (``compact_oi_prediction``), stored when every image has them
_OI_RAGGED = (("oi_triplets", "oi_counts", np.int64, (3,)), ("oi_scores", "oi_counts", np.float32, ()))


def save_predictions(path: str | os.PathLike, predictions: Sequence[Mapping[str, Any]], mode: str,
                     num_predicates: int, groundtruths: Sequence[Mapping[str, Any]] | None = None,
                     image_ids: Sequence[int] | None = None, max_k: int = 100,
                     metadata: Mapping[str, Any] | None = None) -> None:
    """Write one split's predictions as a compact predictions file (atomically).

    predictions: per image, a full prediction (see :class:`SGGEvaluator`) or its compact form; full ones
        are compacted against ``groundtruths`` (same order, required then) with ``max_k``.
    image_ids: dataset indices of the images (default 0..N-1). metadata: JSON-serialisable extras
        (dataset name, split, checkpoint, ...), stored as a JSON string.
    """
    if mode not in MODES:
        raise ValueError(f"save_predictions: mode must be one of {MODES}, got {mode!r}")
    image_ids = np.arange(len(predictions)) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    if len(image_ids) != len(predictions):
        raise ValueError(f"save_predictions: {len(image_ids)} image ids for {len(predictions)} predictions")
    compact = []
    for index, prediction in enumerate(predictions):
        where = f"prediction of image {int(image_ids[index])}"
        if is_compact(prediction):
            num_gt_objects = (len(to_numpy(groundtruths[index]["labels"])) if groundtruths is not None
                              else np.iinfo(np.int64).max)
            check_compact_prediction(prediction, mode, max_k, num_predicates, num_gt_objects, where)
            compact.append(prediction)
        elif groundtruths is None:
            raise ValueError(f"{where}: a full prediction needs its groundtruth to be compacted")
        else:
            compact.append(compact_prediction(prediction, groundtruths[index], mode, num_predicates, max_k, where))
    arrays: dict[str, np.ndarray] = {
        "format": np.array(PREDICTIONS_FORMAT), "version": np.array(PREDICTIONS_VERSION),
        "mode": np.array(mode), "num_predicates": np.array(num_predicates), "max_k": np.array(max_k),
        "ng_top_entries": np.array(NG_TOP_ENTRIES), "image_ids": image_ids,
        "num_pairs": np.array([int(record["num_pairs"]) for record in compact], dtype=np.int64),
        "metadata": np.array(json.dumps(dict(metadata or {}))),
    }
    with_oi = [is_oi_compact(record) for record in compact]
    if any(with_oi) and not all(with_oi):
        raise ValueError(f"save_predictions: image {int(image_ids[with_oi.index(False)])} has no OI candidates "
                         f"('oi_triplets') but others have")
    for name, count_field, dtype, trailing in _RAGGED + (_OI_RAGGED if all(with_oi) and compact else ()):
        parts = [np.asarray(record[name]) for record in compact]
        arrays.setdefault(count_field, np.array([len(part) for part in parts], dtype=np.int64))
        stacked = np.concatenate(parts) if parts else np.zeros((0, *trailing))
        arrays[name] = stacked.reshape(-1, *trailing).astype(dtype if dtype is not None else
                                                              np.result_type(np.float32, stacked.dtype))
    with atomic_write(str(path)) as stream:
        np.savez_compressed(stream, **arrays)


def load_predictions(path: str | os.PathLike) -> dict:
    """Read a predictions file.

    Returns {"mode", "num_predicates", "max_k", "image_ids" (N,) int64, "metadata" dict,
    "predictions": N compact predictions (dicts of numpy arrays, ready for SGGEvaluator.add, and for
    OIEvaluator.add when the file holds OI candidates)}.
    Raises ValueError naming the file when it is not a predictions file of a supported version.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # e.g. a truncated file
        raise ValueError(f"{path}: not a readable predictions file ({error or type(error).__name__})") from error
    if str(arrays.get("format", "")) != PREDICTIONS_FORMAT:
        raise ValueError(f"{path}: not a {PREDICTIONS_FORMAT} file")
    if int(arrays["version"]) != PREDICTIONS_VERSION:
        raise ValueError(f"{path}: predictions file version {int(arrays['version'])}, "
                         f"this code reads version {PREDICTIONS_VERSION}")
    mode, max_k = str(arrays["mode"]), int(arrays["max_k"])
    split = {}
    for name, count_field, _, _ in _RAGGED + (_OI_RAGGED if "oi_counts" in arrays else ()):
        counts = arrays[count_field]
        if counts.sum() != len(arrays[name]):
            raise ValueError(f"{path}: field {name!r} has {len(arrays[name])} rows, {count_field!r} sums to "
                             f"{int(counts.sum())}")
        split[name] = np.split(arrays[name], np.cumsum(counts)[:-1]) if len(counts) else []
    predictions = [{"mode": mode, "max_k": max_k, "num_pairs": int(num_pairs),
                    **{name: split[name][index] for name in split}}
                   for index, num_pairs in enumerate(arrays["num_pairs"].tolist())]
    return {"mode": mode, "num_predicates": int(arrays["num_predicates"]), "max_k": max_k,
            "image_ids": arrays["image_ids"], "metadata": json.loads(str(arrays["metadata"])),
            "predictions": predictions}

"""The predictions file: one compact, versioned ``.npz`` per split, written and read in chunks of images
(format in docs/evaluation.md).

Every image's prediction is stored in the compact form of :func:`compact_prediction` (exactly what the
metrics can reach); predictions in the OI compact form (:func:`compact_oi_prediction`) also keep their
"oi_triplets" and "oi_scores". The images are stored in chunks of up to CHUNK_IMAGES, each chunk's per-image
arrays concatenated with per-image counts (CSR style), so that :class:`PredictionsWriter` and
:func:`iter_predictions` hold one chunk at a time: an SGDet split of VG150 is never in memory at once. The
file is plain numpy (``np.load`` reads it without torch or the model) and is written atomically.
"""
from __future__ import annotations

import contextlib
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..utils.atomic import atomic_write
from ._arrays import to_numpy
from .compaction import MODES, NG_TOP_ENTRIES, check_compact_prediction, compact_prediction, is_compact
from .oi import is_oi_compact

__all__ = ["PREDICTIONS_FORMAT", "PREDICTIONS_VERSION", "PredictionsWriter", "iter_predictions", "load_predictions",
           "read_predictions_header", "save_predictions"]

PREDICTIONS_FORMAT = "rebalance_hca.sgg_predictions"
PREDICTIONS_VERSION = 2
"""Version 2 stores the images in chunks; version 1 (one chunk, fields at the top level) is still read."""
CHUNK_IMAGES = 1024
# per-image ragged fields: (name, count field, dtype, trailing shape)
_RAGGED = (("boxes", "object_counts", np.float32, (4,)), ("labels", "object_counts", np.int64, ()),
           ("scores", "object_counts", None, ()), ("pair_idxs", "pair_counts", np.int64, (2,)),
           ("pair_ranks", "pair_counts", np.int64, ()), ("pair_labels", "pair_counts", np.int64, ()),
           ("pair_scores", "pair_counts", None, ()), ("ng_triplets", "ng_counts", np.int64, (3,)))
# optional: the OI protocol's candidates (``compact_oi_prediction``), stored when every image has them
_OI_RAGGED = (("oi_triplets", "oi_counts", np.int64, (3,)), ("oi_scores", "oi_counts", np.float32, ()))
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class PredictionsWriter:
    """Writes a predictions file one image at a time, holding at most ``chunk_images`` images.

    Use it as a context manager: ``add(image_id, compact_prediction)`` for every image (in the order the file
    keeps); on leaving, the header is written and the file put in place atomically (``close``), or, on an
    exception, the partial file is removed and any previous file at ``path`` stays.
    """

    def __init__(self, path: str | os.PathLike, mode: str, num_predicates: int, max_k: int = 100,
                 metadata: Mapping[str, Any] | None = None, chunk_images: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"save_predictions: mode must be one of {MODES}, got {mode!r}")
        self.path = str(path)
        self.mode, self.num_predicates, self.max_k = mode, int(num_predicates), int(max_k)
        self.metadata = dict(metadata or {})
        self.chunk_images = CHUNK_IMAGES if chunk_images is None else int(chunk_images)
        self._image_ids: list[int] = []
        self._pending: list[Mapping[str, Any]] = []
        self._num_chunks = 0
        self._with_oi: bool | None = None
        self._exits = contextlib.ExitStack()
        self._zip = zipfile.ZipFile(self._exits.enter_context(atomic_write(self.path)), "w",
                                    compression=zipfile.ZIP_DEFLATED)

    def add(self, image_id: int, prediction: Mapping[str, Any], num_gt_objects: int | None = None) -> None:
        """Append one image's compact prediction, checked (``num_gt_objects``: its GT object count, which
        bounds the pair indices in PredCls)."""
        where = f"prediction of image {int(image_id)}"
        check_compact_prediction(prediction, self.mode, self.max_k, self.num_predicates,
                                 np.iinfo(np.int64).max if num_gt_objects is None else num_gt_objects, where)
        with_oi = is_oi_compact(prediction)
        if self._with_oi is None:
            self._with_oi = with_oi
        elif with_oi != self._with_oi:
            raise ValueError(f"save_predictions: image {int(image_id)} {'has' if with_oi else 'has no'} OI "
                             f"candidates ('oi_triplets') but the first image {'has not' if with_oi else 'has'}")
        self._image_ids.append(int(image_id))
        self._pending.append(prediction)
        if len(self._pending) == self.chunk_images:
            self._write_chunk()

    def close(self) -> None:
        """Write the last chunk and the header; the file replaces ``path``."""
        if self._pending:
            self._write_chunk()
        self._write_arrays("", {
            "format": np.array(PREDICTIONS_FORMAT), "version": np.array(PREDICTIONS_VERSION),
            "mode": np.array(self.mode), "num_predicates": np.array(self.num_predicates),
            "max_k": np.array(self.max_k), "ng_top_entries": np.array(NG_TOP_ENTRIES),
            "image_ids": np.array(self._image_ids, dtype=np.int64), "num_chunks": np.array(self._num_chunks),
            "metadata": np.array(json.dumps(self.metadata))})
        self._zip.close()
        self._exits.close()

    def __enter__(self) -> "PredictionsWriter":
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.close()
        else:  # the temporary file is removed; any previous file at ``path`` stays
            self._zip.close()
            self._exits.__exit__(error_type, error, traceback)

    def _write_chunk(self) -> None:
        arrays: dict[str, np.ndarray] = {
            "num_pairs": np.array([int(record["num_pairs"]) for record in self._pending], dtype=np.int64)}
        for name, count_field, dtype, trailing in _RAGGED + (_OI_RAGGED if self._with_oi else ()):
            parts = [to_numpy(record[name]) for record in self._pending]
            arrays.setdefault(count_field, np.array([len(part) for part in parts], dtype=np.int64))
            stacked = np.concatenate(parts)
            arrays[name] = stacked.reshape(-1, *trailing).astype(dtype if dtype is not None else
                                                                  np.result_type(np.float32, stacked.dtype))
        self._write_arrays(_chunk_prefix(self._num_chunks), arrays)
        self._num_chunks += 1
        self._pending = []

    def _write_arrays(self, prefix: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Members ``<prefix><name>.npy``, as ``np.savez_compressed`` writes them."""
        for name, array in arrays.items():
            with self._zip.open(f"{prefix}{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


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
    image_ids = np.arange(len(predictions)) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    if len(image_ids) != len(predictions):
        raise ValueError(f"save_predictions: {len(image_ids)} image ids for {len(predictions)} predictions")
    with PredictionsWriter(path, mode, num_predicates, max_k, metadata) as writer:
        for index, prediction in enumerate(predictions):
            where = f"prediction of image {int(image_ids[index])}"
            num_gt_objects = len(to_numpy(groundtruths[index]["labels"])) if groundtruths is not None else None
            if not is_compact(prediction):
                if groundtruths is None:
                    raise ValueError(f"{where}: a full prediction needs its groundtruth to be compacted")
                prediction = compact_prediction(prediction, groundtruths[index], mode, num_predicates, max_k, where)
            writer.add(int(image_ids[index]), prediction, num_gt_objects)


def read_predictions_header(path: str | os.PathLike) -> dict:
    """What a predictions file holds, without reading its predictions: {"mode", "num_predicates", "max_k",
    "image_ids" (N,) int64 in file order, "metadata" dict}. Raises ValueError naming the file when it is not
    a predictions file of a supported version."""
    with _open_predictions(Path(path)) as (_, header, _):
        return header


def iter_predictions(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(image id, compact prediction) of every image of a predictions file, in file order, reading one chunk
    at a time. Each prediction is a dict of numpy arrays ready for SGGEvaluator.add (and for OIEvaluator.add
    when the file holds OI candidates). Raises ValueError naming the file (and the chunk) when it is damaged."""
    path = Path(path)
    with _open_predictions(path) as (data, header, prefixes):
        mode, max_k, image_ids = header["mode"], header["max_k"], header["image_ids"].tolist()
        position = 0
        for prefix in prefixes:
            try:
                chunk = _read_chunk(data, prefix)
            except _READ_ERRORS as error:
                raise ValueError(f"{path}: chunk {prefix.rstrip('/') or 'of predictions'} is not readable "
                                 f"({error})") from error
            for index, num_pairs in enumerate(chunk["num_pairs"].tolist()):
                if position == len(image_ids):
                    raise ValueError(f"{path}: holds more predictions than its {len(image_ids)} image ids")
                prediction = {"mode": mode, "max_k": max_k, "num_pairs": int(num_pairs),
                              **{name: parts[index] for name, parts in chunk.items() if name != "num_pairs"}}
                yield image_ids[position], prediction
                position += 1
        if position != len(image_ids):
            raise ValueError(f"{path}: holds {position} predictions for {len(image_ids)} image ids")


def load_predictions(path: str | os.PathLike) -> dict:
    """Read a whole predictions file into memory (:func:`iter_predictions` reads it a chunk at a time).

    Returns {"mode", "num_predicates", "max_k", "image_ids" (N,) int64, "metadata" dict,
    "predictions": N compact predictions (dicts of numpy arrays, ready for SGGEvaluator.add, and for
    OIEvaluator.add when the file holds OI candidates)}.
    Raises ValueError naming the file when it is not a predictions file of a supported version.
    """
    header = read_predictions_header(path)
    return {**header, "predictions": [prediction for _, prediction in iter_predictions(path)]}


def _chunk_prefix(index: int) -> str:
    return f"chunk{index:05d}/"


@contextlib.contextmanager
def _open_predictions(path: Path) -> Iterator[tuple[Any, dict, list[str]]]:
    """The open ``np.load`` of a predictions file, its header (see :func:`read_predictions_header`) and its
    chunks' member prefixes."""
    try:
        data = np.load(path, allow_pickle=False)
    except _READ_ERRORS as error:
        raise ValueError(f"{path}: not a readable predictions file ({error})") from error
    with data:
        if "format" not in data.files or str(_member(data, "format", path)) != PREDICTIONS_FORMAT:
            raise ValueError(f"{path}: not a {PREDICTIONS_FORMAT} file")
        version = int(_member(data, "version", path))
        if version not in (1, PREDICTIONS_VERSION):
            raise ValueError(f"{path}: predictions file version {version}, this code reads versions 1 and "
                             f"{PREDICTIONS_VERSION}")
        header = {"mode": str(_member(data, "mode", path)),
                  "num_predicates": int(_member(data, "num_predicates", path)),
                  "max_k": int(_member(data, "max_k", path)), "image_ids": _member(data, "image_ids", path),
                  "metadata": json.loads(str(_member(data, "metadata", path)))}
        num_chunks = 1 if version == 1 else int(_member(data, "num_chunks", path))
        yield data, header, [""] if version == 1 else [_chunk_prefix(index) for index in range(num_chunks)]


def _member(data, name: str, path: Path) -> np.ndarray:
    """One header array of an open predictions file; ValueError naming the file when it is missing or damaged."""
    try:
        return data[name]
    except _READ_ERRORS as error:
        raise ValueError(f"{path}: not a readable predictions file (field {name!r}: {error})") from error


def _read_chunk(data, prefix: str) -> dict[str, Any]:
    """One chunk's per-image arrays: {"num_pairs": (n,), field: n per-image arrays}."""
    arrays = {name: data[prefix + name] for name in ("num_pairs", "object_counts", "pair_counts", "ng_counts")}
    with_oi = f"{prefix}oi_counts" in data.files
    if with_oi:
        arrays["oi_counts"] = data[f"{prefix}oi_counts"]
    chunk: dict[str, Any] = {"num_pairs": arrays["num_pairs"]}
    for name, count_field, _, _ in _RAGGED + (_OI_RAGGED if with_oi else ()):
        values, counts = data[prefix + name], arrays[count_field]
        if len(counts) != len(arrays["num_pairs"]) or counts.sum() != len(values):
            raise ValueError(f"field {name!r} has {len(values)} rows, {count_field!r} sums to {int(counts.sum())} "
                             f"over {len(counts)} images")
        chunk[name] = np.split(values, np.cumsum(counts)[:-1]) if len(counts) else []
    return chunk

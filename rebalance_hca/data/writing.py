"""What every family's writer shares (docs/data.md#converting-between-families): a split's samples as flat arrays
(``SplitSamples``, read from any family's dataset by ``split_samples``), the staged folder that makes a write
atomic, reproducible JSON files, the image links or copies, and what a written dataset needs to be loaded
(``WrittenDataset``)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

import numpy as np

from .files import DataFormatError
from .scene_graph_dataset import SceneGraphDataset

IMAGE_MODES = ("link", "copy", "none")


@dataclass
class SplitSamples:
    """One split as flat arrays, the input of the family writers. I images, N objects, R relations.

    file_names: (I,) image file names relative to the image folder; widths, heights: (I,) int64 original image
    sizes; box_counts, rel_counts: (I,) int64; boxes: (N, 4) xyxy in original pixels as stored (before the
    loader's clamping; int64 or float64); labels: (N,) int64 classes 1..C-1; relations: (R, 3) int64 [subject,
    object (indices within the image), predicate 1..P-1].
    """

    file_names: list[str]
    widths: np.ndarray
    heights: np.ndarray
    box_counts: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    rel_counts: np.ndarray
    relations: np.ndarray

    def box_offsets(self) -> np.ndarray:
        """(I + 1,) int64: image i's objects are rows box_offsets[i]:box_offsets[i + 1]."""
        return np.concatenate([[0], np.cumsum(self.box_counts)]).astype(np.int64)

    def rel_offsets(self) -> np.ndarray:
        """(I + 1,) int64: image i's relations are rows rel_offsets[i]:rel_offsets[i + 1]."""
        return np.concatenate([[0], np.cumsum(self.rel_counts)]).astype(np.int64)

    def take(self, images: np.ndarray) -> "SplitSamples":
        """The images at positions ``images`` ((K,) int, any order, repeats allowed), as a new split."""
        box_offsets, rel_offsets = self.box_offsets(), self.rel_offsets()
        box_rows = np.concatenate([np.arange(box_offsets[i], box_offsets[i + 1]) for i in images] + [[]])
        rel_rows = np.concatenate([np.arange(rel_offsets[i], rel_offsets[i + 1]) for i in images] + [[]])
        box_rows, rel_rows = box_rows.astype(np.int64), rel_rows.astype(np.int64)
        return SplitSamples([self.file_names[i] for i in images], self.widths[images], self.heights[images],
                            self.box_counts[images], self.boxes[box_rows], self.labels[box_rows],
                            self.rel_counts[images], self.relations[rel_rows].reshape(-1, 3))


def split_samples(dataset: SceneGraphDataset) -> SplitSamples:
    """Every image of ``dataset`` in its order: file name, size, the stored boxes (``image_boxes``: before
    clamping), labels and every relation row after the split's filters (``image_relations``). Build the dataset
    without duplicate filtering: these are then exactly its evaluation-form samples, before clamping."""
    count = len(dataset)
    boxes = [np.asarray(dataset.image_boxes(i), dtype=np.float64).reshape(-1, 4) for i in range(count)]
    relations = [dataset.image_relations(i) for i in range(count)]
    labels = [dataset.labels[start:start + n] for start, n in zip(dataset.index.box_start, dataset.index.box_count)]
    return SplitSamples(
        file_names=[dataset.file_name(i) for i in range(count)],
        widths=np.asarray(dataset.widths, dtype=np.int64), heights=np.asarray(dataset.heights, dtype=np.int64),
        box_counts=np.array([len(b) for b in boxes], dtype=np.int64),
        boxes=np.concatenate(boxes + [np.zeros((0, 4))]),
        labels=np.concatenate(labels + [np.zeros(0, np.int64)]).astype(np.int64),
        rel_counts=np.array([len(r) for r in relations], dtype=np.int64),
        relations=np.concatenate(relations + [np.zeros((0, 3), np.int64)]).astype(np.int64),
    )


def shared_vocabulary(splits: Mapping[str, SceneGraphDataset]) -> tuple[list[str], list[str]]:
    """(ind_to_classes, ind_to_predicates), background at 0, that every split shares; DataFormatError if not."""
    vocabularies = {(tuple(ds.ind_to_classes), tuple(ds.ind_to_predicates)) for ds in splits.values()}
    if len(vocabularies) != 1:
        raise DataFormatError(f"the splits {sorted(splits)} do not share one vocabulary")
    classes, predicates = vocabularies.pop()
    return list(classes), list(predicates)


def require_images_kept(samples: SplitSamples, split: str, family: str, need_relation: bool) -> None:
    """A DataFormatError naming the first image of ``split`` without an object (or, with ``need_relation``,
    without a relation): ``family``'s loader drops such images, so they cannot be written."""
    lacking = samples.box_counts == 0
    if need_relation:
        lacking |= samples.rel_counts == 0
    if lacking.any():
        position = int(np.flatnonzero(lacking)[0])
        what = "no object" if samples.box_counts[position] == 0 else "no relation"
        raise DataFormatError(
            f"{split} image {position} ({samples.file_names[position]!r}) has {what}: {family}'s loader drops "
            f"such images from its {split} split, so it cannot be written in that layout"
            + (" (convert with MODEL.RELATION_ON True)" if what == "no relation" else ""))


def json_boxes(boxes: np.ndarray) -> list:
    """Boxes as JSON lists: integers when every coordinate is integral (as the releases store them), else
    floats (whose repr reads back to the same float64). (N, 4) -> N lists of 4 numbers."""
    boxes = np.asarray(boxes)
    if boxes.dtype.kind == "f" and np.array_equal(boxes, np.round(boxes)):
        boxes = boxes.astype(np.int64)
    return boxes.tolist()


def write_json(path: str, content, sort_keys: bool = True) -> None:
    """Compact JSON, keys sorted unless ``sort_keys`` is False (then in insertion order): equal content gives
    equal bytes."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, sort_keys=sort_keys, separators=(",", ":"))


def check_target(target: str, overwrite: bool, marker_file: str) -> None:
    """Refuse an existing ``target``; with ``overwrite`` and a ``marker_file``, replace only a folder that holds
    that marker (one this tool wrote)."""
    if not os.path.lexists(target):
        return
    if not marker_file:
        raise FileExistsError(f"output folder already exists: {target} (choose a new folder; nothing was written)")
    if not overwrite:
        raise FileExistsError(f"{target} already exists; pass --overwrite (overwrite=True) to replace it")
    if not os.path.isfile(os.path.join(target, marker_file)):
        raise FileExistsError(
            f"{target} exists and is not a SynthVG dataset (no {marker_file}); refusing to replace it, "
            "even with --overwrite. Move it away or choose another --output-dir."
        )


@contextlib.contextmanager
def staged_folder(target: str, overwrite: bool = False, marker_file: str = "") -> Iterator[str]:
    """Yield an empty folder beside ``target``; on success it replaces ``target`` by renames, on error it is
    deleted and ``target`` is left as it was. An existing ``target`` is refused (``check_target``)."""
    target = os.path.abspath(target)
    check_target(target, overwrite, marker_file)
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        yield staging
        check_target(target, overwrite, marker_file)
        if os.path.lexists(target):
            retired = tempfile.mkdtemp(dir=parent, prefix=f".{name}.old-")
            os.rename(target, os.path.join(retired, name))
            os.rename(staging, target)
            shutil.rmtree(retired)
        else:
            os.rename(staging, target)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)


def place_images(image_folder: str, images: Iterable[tuple[str, str]], mode: str) -> None:
    """Put each (source image path, file name relative to ``image_folder``) there: ``mode`` "link" symlinks,
    "copy" copies, "none" places nothing. A name placed already is skipped (an image in several splits); a
    missing source raises naming it."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, got {mode!r}")
    os.makedirs(image_folder, exist_ok=True)
    if mode == "none":
        return
    for source, name in images:
        target = os.path.join(image_folder, name)
        if os.path.lexists(target):
            continue
        if not os.path.isfile(source):
            raise DataFormatError(f"source image is missing: {source}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if mode == "link":
            os.symlink(os.path.abspath(source), target)
        else:
            shutil.copyfile(source, target)


def source_images(dataset: SceneGraphDataset, names: Iterable[str]) -> list[tuple[str, str]]:
    """(source image path, written file name) per image of ``dataset``, the written names in its order."""
    return [(dataset.image_path(index), name) for index, name in enumerate(names)]


@dataclass(frozen=True)
class WrittenDataset:
    """What loading a written dataset needs. overrides: config KEY VALUE tokens (DATASETS.DATA_DIR, the
    dataset names, the family's own keys such as DATASETS.NUM_VAL_IM) that load it with the same samples;
    notes: lines on what the layout could not hold as the source had it."""

    overrides: tuple[str, ...]
    notes: tuple[str, ...] = ()


def catalog_overrides(data_root: str | None, names: Mapping[str, str], *extra: str) -> tuple[str, ...]:
    """DATASETS.DATA_DIR ``data_root`` (unless None) and DATASETS.TRAIN / VAL / TEST (``names``: split -> catalog
    name) as KEY VALUE tokens, then ``extra``."""
    tokens = [] if data_root is None else ["DATASETS.DATA_DIR", os.path.abspath(data_root)]
    for split, name in names.items():
        tokens += [f"DATASETS.{split.upper()}", f"('{name}',)"]
    return (*tokens, *extra)


def concatenate_samples(parts: list[SplitSamples]) -> SplitSamples:
    """The images of ``parts`` one after the other, as one split."""
    return SplitSamples(
        file_names=[name for part in parts for name in part.file_names],
        widths=np.concatenate([part.widths for part in parts]).astype(np.int64),
        heights=np.concatenate([part.heights for part in parts]).astype(np.int64),
        box_counts=np.concatenate([part.box_counts for part in parts]).astype(np.int64),
        boxes=np.concatenate([part.boxes for part in parts]).reshape(-1, 4),
        labels=np.concatenate([part.labels for part in parts]).astype(np.int64),
        rel_counts=np.concatenate([part.rel_counts for part in parts]).astype(np.int64),
        relations=np.concatenate([part.relations for part in parts]).reshape(-1, 3).astype(np.int64),
    )

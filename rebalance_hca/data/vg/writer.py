"""Writing VG150's files (docs/reference.md#vg150-data): ``VG-SGG-with-attri.h5``, ``VG-SGG-dicts-with-attri.json``
and ``image_data.json`` byte-for-byte reproducibly (SynthVG writes through here), and any family's splits in this
layout (``write_vg_dataset``, docs/data.md#converting-between-families).

VG150 stores boxes as integers in a frame whose longer image side is 1024 (``BOX_SCALE``); its loader rescales
them to the image (k / 1024 * longer side, float32) and clamps them. ``frame_boxes`` picks, per coordinate, an
integer that the loader turns back into the source's clamped value exactly when one exists (always for boxes
that came from VG150), else the nearest (half a frame unit: longer side / 2048 pixels).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import h5py
import numpy as np

from ..files import DataFormatError
from ..scene_graph_dataset import NUM_ATTRIBUTE_SLOTS, SceneGraphDataset
from ..writing import (SplitSamples, WrittenDataset, catalog_overrides, concatenate_samples, place_images,
                       require_images_kept, shared_vocabulary, source_images, split_samples, staged_folder,
                       write_json)
from .files import BOX_SCALE, CORRUPTED_IMAGE_IDS, VG_FILES

VG_FOLDER = os.path.dirname(VG_FILES["roidb_file"])
H5_FILE_NAME = os.path.basename(VG_FILES["roidb_file"])
DICTS_FILE_NAME = os.path.basename(VG_FILES["dict_file"])
IMAGE_DATA_FILE_NAME = os.path.basename(VG_FILES["image_file"])
IMAGE_FOLDER_NAME = os.path.basename(VG_FILES["img_dir"])
SPLIT_CODES = {"train": 0, "val": 0, "test": 2}
# The order of the h5 rows a conversion writes: VG150's val is the first DATASETS.NUM_VAL_IM train-pool images.
WRITTEN_SPLIT_ORDER = ("val", "train", "test")
_IMAGE_ID_NAME = re.compile(r"[1-9][0-9]*\.jpg")


@dataclass
class VGArrays:
    """Everything the h5 holds, plus per-image sizes and ids. I images, N objects, R relations.

    split, first_box, last_box, first_rel, last_rel: (I,) int (-1: none; last inclusive); labels: (N,) class
    ids; boxes_1024_xyxy: (N, 4) integer boxes in the frame where the image's longer side is 1024 (x2 > x1);
    attributes: (N, 10) 0-padded ids; relationships: (R, 2) global object rows; predicates: (R,);
    image_ids, widths, heights: (I,).
    """

    split: np.ndarray
    first_box: np.ndarray
    last_box: np.ndarray
    first_rel: np.ndarray
    last_rel: np.ndarray
    labels: np.ndarray
    boxes_1024_xyxy: np.ndarray
    attributes: np.ndarray
    relationships: np.ndarray
    predicates: np.ndarray
    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray


def vg_arrays(split: np.ndarray, image_ids: np.ndarray, samples: SplitSamples, boxes_1024_xyxy: np.ndarray,
              attributes: np.ndarray) -> VGArrays:
    """The h5's arrays of the images of ``samples`` (I images, N objects): ``split`` (I,) codes (0 train pool,
    2 test), ``image_ids`` (I,), ``boxes_1024_xyxy`` (N, 4) integer frame boxes, ``attributes`` (N, 10)."""
    box_starts, rel_starts = samples.box_offsets()[:-1], samples.rel_offsets()[:-1]
    box_counts, rel_counts = samples.box_counts, samples.rel_counts
    return VGArrays(
        split=np.asarray(split, dtype=np.int64),
        first_box=np.where(box_counts > 0, box_starts, -1),
        last_box=np.where(box_counts > 0, box_starts + box_counts - 1, -1),
        first_rel=np.where(rel_counts > 0, rel_starts, -1),
        last_rel=np.where(rel_counts > 0, rel_starts + rel_counts - 1, -1),
        labels=samples.labels,
        boxes_1024_xyxy=boxes_1024_xyxy,
        attributes=attributes,
        relationships=samples.relations[:, :2] + np.repeat(box_starts, rel_counts)[:, None],
        predicates=samples.relations[:, 2],
        image_ids=np.asarray(image_ids, dtype=np.int64),
        widths=samples.widths,
        heights=samples.heights,
    )


def pixel_boxes_to_frame(boxes_xyxy: np.ndarray, longer_side: np.ndarray, scale: int) -> np.ndarray:
    """Pixel xyxy boxes -> integer xyxy boxes in the frame where the image's longer side is ``scale``.

    boxes_xyxy: (N, 4); longer_side: (N,) the longer side of each box's image. -> (N, 4) int64, x2 > x1.
    """
    factor = (scale / np.asarray(longer_side, np.float64))[:, None]
    frame = np.rint(np.asarray(boxes_xyxy, np.float64) * factor).astype(np.int64)
    frame[:, 2:] = np.maximum(frame[:, 2:], frame[:, :2] + 1)
    return frame


def decoded_boxes(frame: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """What VG150's loader makes of integer 1024-frame boxes for evaluation: k / 1024 * longer side as float32,
    clamped to [0, w-1] x [0, h-1]. frame: (N, 4); widths, heights: (N,) of each box's image. -> (N, 4) float32."""
    longer = np.maximum(widths, heights).astype(np.float64)[:, None]
    return _clamped((np.asarray(frame) / BOX_SCALE * longer).astype(np.float32), widths, heights)


def clamped_boxes(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """The evaluation-form boxes any family's loader gives for stored pixel boxes: float32, clamped.
    (N, 4) -> (N, 4) float32."""
    return _clamped(np.asarray(boxes).astype(np.float32), widths, heights)


def _clamped(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    limits = np.stack([widths - 1, heights - 1, widths - 1, heights - 1], axis=1).astype(np.float32)
    return np.minimum(np.maximum(boxes, np.float32(0)), limits)


def frame_boxes(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Pixel boxes as stored (before clamping) -> the integer 1024-frame boxes to write.

    Per coordinate: the rounded frame value, else the nearest one within two units that ``decoded_boxes`` turns
    into exactly ``clamped_boxes`` (the source's evaluation-form value); negative values become 0 (clamped to 0
    either way); a box narrower than one unit gets x2 = x1 + 1 (VG150 stores widths > 0). boxes: (N, 4) xyxy;
    widths, heights: (N,) of each box's image. -> (N, 4) int64.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wanted = clamped_boxes(boxes, widths, heights)
    rounded = np.rint(boxes * BOX_SCALE / np.maximum(widths, heights)[:, None]).astype(np.int64)
    chosen, found = rounded.copy(), decoded_boxes(rounded, widths, heights) == wanted
    for delta in (-1, 1, -2, 2):
        candidate = rounded + delta
        hit = ~found & (decoded_boxes(candidate, widths, heights) == wanted)
        chosen[hit], found = candidate[hit], found | hit
    chosen = np.maximum(chosen, 0)
    chosen[:, 2:] = np.maximum(chosen[:, 2:], chosen[:, :2] + 1)
    return chosen


def xyxy_to_vg_cxcywh(frame_boxes: np.ndarray) -> np.ndarray:
    """Integer xyxy -> VG's int32 (cx, cy, w, h), chosen so that SGB's truncating decode
    (x1 = int(cx - w / 2), x2 = x1 + w) returns the same xyxy. (N, 4) -> (N, 4) int32."""
    size = frame_boxes[:, 2:] - frame_boxes[:, :2]
    centre = frame_boxes[:, :2] + (size + 1) // 2
    return np.concatenate([centre, size], axis=1).astype(np.int32)


def write_h5(path: str, arrays: VGArrays) -> None:
    """VG-SGG-with-attri.h5 with every dataset of SGB's file; no timestamps, so equal input gives equal bytes."""
    boxes_1024 = xyxy_to_vg_cxcywh(arrays.boxes_1024_xyxy)
    boxes_512 = xyxy_to_vg_cxcywh(pixel_boxes_to_frame(arrays.boxes_1024_xyxy,
                                                       np.full(arrays.labels.size, BOX_SCALE), 512))
    datasets = {
        "split": arrays.split.astype(np.int32),
        "img_to_first_box": arrays.first_box.astype(np.int32),
        "img_to_last_box": arrays.last_box.astype(np.int32),
        "img_to_first_rel": arrays.first_rel.astype(np.int32),
        "img_to_last_rel": arrays.last_rel.astype(np.int32),
        "labels": arrays.labels.astype(np.int64).reshape(-1, 1),
        "boxes_1024": boxes_1024,
        "boxes_512": boxes_512,
        "active_object_mask": np.ones((arrays.labels.size, 1), dtype=bool),
        "relationships": arrays.relationships.astype(np.int32).reshape(-1, 2),
        "predicates": arrays.predicates.astype(np.int64).reshape(-1, 1),
        "attributes": arrays.attributes.astype(np.int64).reshape(-1, NUM_ATTRIBUTE_SLOTS),
    }
    with h5py.File(path, "w", libver="earliest", track_order=False) as handle:
        for name, data in datasets.items():
            handle.create_dataset(name, data=data, track_times=False)


def vg_dictionaries(classes: Sequence[str], predicates: Sequence[str], attributes: Sequence[str],
                    labels: np.ndarray, predicate_ids: np.ndarray, attribute_ids: np.ndarray) -> dict:
    """The dicts json (docs/reference.md#vg150-dictionaries): per kind, the names (in id order from 1, without
    background) as ``<kind>_to_idx`` / ``idx_to_<kind>`` and the counts of each id among ``labels``,
    ``predicate_ids``, ``attribute_ids`` as ``object_count`` / ``predicate_count`` / ``attribute_count``."""
    content = {}
    for key, plural, names, values in (("label", "object", classes, labels),
                                       ("predicate", "predicate", predicates, predicate_ids),
                                       ("attribute", "attribute", attributes, attribute_ids)):
        ids = {name: index + 1 for index, name in enumerate(names)}
        counts = np.bincount(np.asarray(values, np.int64).ravel(), minlength=len(names) + 1)
        content[f"{key}_to_idx"] = ids
        content[f"idx_to_{key}"] = {str(index): name for name, index in ids.items()}
        content[f"{plural}_count"] = {name: int(counts[index]) for name, index in ids.items()}
    return content


def image_data_entry(image_id: int, width: int, height: int, url: str) -> dict:
    """One image_data.json entry (the loader reads image_id, width and height)."""
    return {"coco_id": None, "flickr_id": None, "height": int(height), "image_id": int(image_id), "url": url,
            "width": int(width)}


def write_vg_files(folder: str, arrays: VGArrays, dictionaries: dict, image_entries: list[dict],
                   sort_dictionary_keys: bool = True) -> None:
    """The h5, the dicts json and image_data.json (``image_entries``: one per h5 row in row order, plus ids the
    loader drops) into ``folder``. ``sort_dictionary_keys`` False keeps the dictionaries' key order (the
    predicate_count order breaks ties of the stage-2 ranking)."""
    write_h5(os.path.join(folder, H5_FILE_NAME), arrays)
    write_json(os.path.join(folder, DICTS_FILE_NAME), dictionaries, sort_keys=sort_dictionary_keys)
    write_json(os.path.join(folder, IMAGE_DATA_FILE_NAME), image_entries)


def vg_image_ids(file_names: Sequence[str]) -> tuple[np.ndarray, bool]:
    """(image id per file name (I,) int64, whether the names were kept). VG150 names an image ``<image_id>.jpg``:
    names of that form (a positive id, not one of VG's corrupted ids the loader drops) keep their ids; otherwise
    every distinct name is numbered 1, 2, ... in order of first appearance, skipping the corrupted ids."""
    matches = [_IMAGE_ID_NAME.fullmatch(name) for name in file_names]
    if all(matches):
        ids = np.array([int(name[:-4]) for name in file_names], dtype=np.int64)
        if not np.isin(ids, sorted(CORRUPTED_IMAGE_IDS)).any():
            return ids, True
    numbering, next_id = {}, 0
    for name in file_names:
        if name not in numbering:
            next_id += 1
            while next_id in CORRUPTED_IMAGE_IDS:
                next_id += 1
            numbering[name] = next_id
    return np.array([numbering[name] for name in file_names], dtype=np.int64), False


def write_vg_dataset(data_root: str, datasets: Mapping[str, SceneGraphDataset], images: str,
                     names: Mapping[str, str]) -> WrittenDataset:
    """Write ``datasets`` (train, val, test of any family, built without duplicate filtering) as
    ``<data_root>/vg/`` (``data_root`` must not exist; nothing is written on error) and return what loads it:
    ``names`` (split -> VG150 catalog name), DATASETS.NUM_VAL_IM = the val images (written first in the train
    pool). Images without objects raise (VG150's loader drops them). ``images``: "link", "copy" or "none"."""
    classes, predicates = shared_vocabulary(datasets)
    samples = {split: split_samples(datasets[split]) for split in WRITTEN_SPLIT_ORDER}
    for split, part in samples.items():
        require_images_kept(part, split, "VG150", need_relation=False)
    written = concatenate_samples([samples[split] for split in WRITTEN_SPLIT_ORDER])
    _require_upright_boxes(samples)
    widths, heights = (np.repeat(sizes, written.box_counts) for sizes in (written.widths, written.heights))
    frame = frame_boxes(written.boxes, widths, heights)
    image_ids, kept_names = vg_image_ids(written.file_names)
    split_codes = np.concatenate([np.full(len(samples[split].file_names), SPLIT_CODES[split])
                                  for split in WRITTEN_SPLIT_ORDER])
    arrays = vg_arrays(split_codes, image_ids, written, frame,
                       np.zeros((len(written.labels), NUM_ATTRIBUTE_SLOTS), dtype=np.int64))
    train = samples["train"]
    dictionaries = vg_dictionaries(classes[1:], predicates[1:], [], train.labels, train.relations[:, 2], [])
    entries = [image_data_entry(image_id, width, height, name) for image_id, width, height, name
               in zip(image_ids, written.widths, written.heights, written.file_names)]
    with staged_folder(data_root) as staging:
        folder = os.path.join(staging, VG_FOLDER)
        os.makedirs(folder)
        write_vg_files(folder, arrays, dictionaries, entries, sort_dictionary_keys=False)
        offset = 0
        for split in WRITTEN_SPLIT_ORDER:
            count = len(samples[split].file_names)
            place_images(os.path.join(folder, IMAGE_FOLDER_NAME),
                         source_images(datasets[split], [f"{i}.jpg" for i in image_ids[offset:offset + count]]),
                         images)
            offset += count
    return WrittenDataset(
        overrides=catalog_overrides(data_root, names, "DATASETS.NUM_VAL_IM", str(len(samples["val"].file_names))),
        notes=_vg_notes(written, frame, widths, heights, kept_names),
    )


def _require_upright_boxes(samples: Mapping[str, SplitSamples]) -> None:
    """VG150 stores widths and heights >= 0 only: a box with x2 < x1 or y2 < y1 raises naming it."""
    for split, part in samples.items():
        inverted = (part.boxes[:, 2] < part.boxes[:, 0]) | (part.boxes[:, 3] < part.boxes[:, 1])
        if inverted.any():
            row = int(np.flatnonzero(inverted)[0])
            image = int(np.searchsorted(part.box_offsets(), row, side="right") - 1)
            raise DataFormatError(
                f"{split} image {image} ({part.file_names[image]!r}) object {row - part.box_offsets()[image]} "
                f"field 'box' {part.boxes[row].tolist()} has x2 < x1 or y2 < y1, which VG150's h5 (centre, "
                f"width, height) cannot hold")


def _vg_notes(written: SplitSamples, frame: np.ndarray, widths: np.ndarray, heights: np.ndarray,
              kept_names: bool) -> tuple[str, ...]:
    """What the VG150 layout changed: rounded box coordinates, renamed images, dropped attributes."""
    error = np.abs(decoded_boxes(frame, widths, heights).astype(np.float64)
                   - clamped_boxes(written.boxes, widths, heights))
    notes = [f"VG150 stores boxes as integers in a 1024 frame: {int((error > 0).sum())} of {error.size} "
             f"box coordinates round (at most {float(error.max(initial=0.0)):.4g} px; bound: longer image "
             f"side / 2048)",
             "VG150's dictionary gets no attributes, and predicate_count = the train split's relations per "
             "predicate"]
    if not kept_names:
        notes.append("VG150 names images <image_id>.jpg: the source's file names are not all of that form, so "
                     "the images are numbered 1, 2, ... (val, train, test order); image_data.json's url keeps "
                     "each source file name")
    return tuple(notes)

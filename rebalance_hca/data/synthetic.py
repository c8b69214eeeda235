"""SynthVG: a generated dataset in the exact VG150 file formats (or PySGG's Open Images V6 layout, or SHA-GCL's
GQA-200 layout, the same scenes), so that every real loading path runs on it.

``write_synthvg`` writes ``<output_dir>/vg/`` with ``VG_100K/<image_id>.jpg``, ``VG-SGG-with-attri.h5``,
``VG-SGG-dicts-with-attri.json``, ``image_data.json``, ``glove.6B.200d.txt`` and ``SYNTHVG.json`` (how it was
generated). Scenes, relation truth and the annotator live in ``rebalance_hca.data.synthvg``:

* ``scene``: layouts of 22 object classes (people, animals, vehicles, furniture, tableware, buildings, ...);
* ``relations``: which of the 21 predicates hold for each ordered pair, from geometry, depth and class;
* ``annotation``: the sparse, VG-biased annotator (``ANNOTATION_KEEP_RATE``, ``GENERAL_FOR_INFORMATIVE_RATE``,
  ``DUPLICATE_RELATION_RATE``);
* ``render``: class-specific drawing; ``word_vectors``: the GloVe file; ``vg_scale``: the VG-sized,
  annotation-only variant for loading benchmarks.

``write_synthvg_oi`` writes the same scenes as ``<output_dir>/openimages/open_image_v6/`` (``images/<img_fn>.jpg``,
``annotations/vrd-{train,val,test}-anno.json``, ``annotations/categories_dict.json``, the GloVe file and
``SYNTHVG.json``): test = the VG test split, val = the first ``num_val_images`` train-pool images, train = the
rest; images without boxes are left out (the release lists only images with relationship annotations).
``write_oi_scale`` writes OI-sized annotations for loading benchmarks.

``write_synthvg_gqa`` writes the same scenes in SHA-GCL's GQA-200 layout, ``<output_dir>/gqa/`` (``images/
<image_id>.jpg``, ``GQA_200_ID_Info.json``, ``GQA_200_Train.json`` = the VG train pool, ``GQA_200_Test.json`` =
the VG test split, the GloVe file and ``SYNTHVG.json``); ``write_gqa_scale`` GQA-sized annotations.

Everything is a pure function of the seed and the options: each image draws from its own generators seeded
by (seed, image_id), so a run is byte-for-byte reproducible however many processes render it.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable

import cv2
import numpy as np

from .gqa.files import GQA_FILES, GQA_FOLDER
from .gqa.writer import write_gqa_annotation_files
from .oi.files import OI_FOLDER, OI_IMAGE_FOLDER
from .oi.writer import write_oi_annotation_files
from .scene_graph_dataset import NUM_ATTRIBUTE_SLOTS
from .synthvg.annotation import (
    ANNOTATION_KEEP_RATE, DUPLICATE_RELATION_RATE, GENERAL_FOR_INFORMATIVE_RATE, Annotation, annotate,
)
from .synthvg.gqa_scale import gqa_file_name, gqa_object_names, gqa_predicate_names, gqa_scale_splits
from .synthvg.oi_scale import OI_PREDICATES, oi_file_name, oi_object_names, oi_scale_splits
from .synthvg.relations import true_relations
from .synthvg.render import encode_jpeg, render_scene
from .synthvg.scene import Scene, empty_scene, sample_image_size, sample_scene
from .synthvg.vg_scale import vg_scale_arrays
from .synthvg.vocabulary import ATTRIBUTE_TO_ID, CLASS_TO_ID, OBJECT_CLASSES, PREDICATE_TO_ID, PREDICATES
from .synthvg.word_vectors import GLOVE_FILE_NAME, glove_text
from .synthvg.writers import MARKER_FILE_NAME, write_annotation_files
from .vg.files import BOX_SCALE, CORRUPTED_IMAGE_IDS
from .vg.writer import IMAGE_FOLDER_NAME, VGArrays, pixel_boxes_to_frame, vg_arrays
from .family import SPLITS
from .writing import SplitSamples, staged_folder

DEFAULT_NUM_IMAGES = 4000
DEFAULT_IMAGE_SIZE = 192
DEFAULT_TEST_FRACTION = 0.3
DEFAULT_OI_VAL_IMAGES = 100
# Per split, this fraction of images (at least one) shows no object (background only; h5 img_to_first_box
# = -1), and this fraction (at least one) has objects but no annotated relation; more lose all their
# relations to the sparse annotator by chance.
NO_BOX_IMAGE_FRACTION = 0.01
NO_RELATION_IMAGE_FRACTION = 0.02
# Promised shape of the predicate distribution on the default-size dataset: the most frequent predicate is
# at least this many times as frequent as the least frequent one (about 130x at 4000 images).
HEAD_TO_TAIL_MIN_RATIO = 50
# Images scene-sampled to estimate the class/predicate/attribute frequencies of the VG-scale file.
VG_SCALE_FREQUENCY_IMAGES = 1000
_RENDER_STREAM = 1
_SPLIT_TRAIN, _SPLIT_TEST = 0, 2


@dataclass(frozen=True)
class SynthVGOptions:
    """What to generate: ``num_images`` h5 images (plus VG's corrupted ids when the id range covers them),
    image longer sides around ``image_size`` pixels, ``test_fraction`` of the images in split 2."""

    num_images: int = DEFAULT_NUM_IMAGES
    seed: int = 0
    image_size: int = DEFAULT_IMAGE_SIZE
    test_fraction: float = DEFAULT_TEST_FRACTION

    def __post_init__(self) -> None:
        if self.num_images < 1:
            raise ValueError(f"num_images must be at least 1, got {self.num_images}")
        if not 32 <= self.image_size <= 2048:
            raise ValueError(f"image_size must lie in [32, 2048] pixels, got {self.image_size}")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError(f"test_fraction must lie in [0, 1], got {self.test_fraction}")


@dataclass
class SynthImage:
    """One generated image: its id, size, split (0 train pool / 2 test), scene (objects in annotation order)
    and the annotator's relations (indices into ``scene.objects``)."""

    image_id: int
    width: int
    height: int
    split: int
    scene: Scene
    annotation: Annotation

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 class ids."""
        return np.array([CLASS_TO_ID[obj.name] for obj in self.scene.objects], dtype=np.int64)

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) float64 pixel boxes xyxy (x2, y2 exclusive)."""
        return np.array([obj.box for obj in self.scene.objects], dtype=np.float64).reshape(-1, 4)

    @property
    def attributes(self) -> np.ndarray:
        """(N, 10) int64 attribute ids, 0-padded."""
        table = np.zeros((len(self.scene.objects), NUM_ATTRIBUTE_SLOTS), dtype=np.int64)
        for row, obj in enumerate(self.scene.objects):
            ids = [ATTRIBUTE_TO_ID[name] for name in obj.attributes()][:NUM_ATTRIBUTE_SLOTS]
            table[row, :len(ids)] = ids
        return table


def image_ids(num_images: int) -> tuple[list[int], list[int]]:
    """(ids of the ``num_images`` h5 rows, VG's corrupted ids inside that range): 1, 2, ... skipping the
    corrupted ids, which real VG lists in image_data.json without an h5 row or an image file."""
    corrupted = set(CORRUPTED_IMAGE_IDS)
    ids, skipped, candidate = [], [], 0
    while len(ids) < num_images:
        candidate += 1
        (skipped if candidate in corrupted else ids).append(candidate)
    return ids, skipped


def _split_plan(options: SynthVGOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per h5 row: split code, whether it has no boxes, whether its relations are withheld."""
    rng = np.random.default_rng([options.seed])
    count = options.num_images
    split = np.full(count, _SPLIT_TRAIN, dtype=np.int64)
    split[rng.choice(count, int(round(count * options.test_fraction)), replace=False)] = _SPLIT_TEST
    no_boxes = np.zeros(count, dtype=bool)
    no_relations = np.zeros(count, dtype=bool)
    for code in (_SPLIT_TRAIN, _SPLIT_TEST):
        members = np.flatnonzero(split == code)
        if members.size < 3:
            continue
        chosen = rng.permutation(members)
        num_empty = max(1, int(round(members.size * NO_BOX_IMAGE_FRACTION)))
        num_unrelated = max(1, int(round(members.size * NO_RELATION_IMAGE_FRACTION)))
        no_boxes[chosen[:num_empty]] = True
        no_relations[chosen[num_empty:num_empty + num_unrelated]] = True
    return split, no_boxes, no_relations


def generate_image(image_id: int, split: int, options: SynthVGOptions, no_boxes: bool = False,
                   no_relations: bool = False) -> SynthImage:
    """Sample one image's scene (objects shuffled into annotation order), its true relations and annotation."""
    rng = np.random.default_rng([options.seed, image_id])
    width, height = sample_image_size(rng, options.image_size)
    if no_boxes:
        return SynthImage(image_id, width, height, split, empty_scene(rng, width, height), Annotation.empty())
    scene = sample_scene(rng, width, height)
    scene.objects = [scene.objects[i] for i in rng.permutation(len(scene.objects))]
    annotation = annotate(rng, true_relations(scene))
    if no_relations:
        annotation = Annotation.empty()
    return SynthImage(image_id, width, height, split, scene, annotation)


def generate_images(options: SynthVGOptions) -> list[SynthImage]:
    """All h5 images of a SynthVG dataset, in h5 (= id) order."""
    ids, _ = image_ids(options.num_images)
    split, no_boxes, no_relations = _split_plan(options)
    return [generate_image(image_id, int(split[row]), options, bool(no_boxes[row]), bool(no_relations[row]))
            for row, image_id in enumerate(ids)]


def images_to_samples(images: list[SynthImage], file_name: Callable[[int], str]) -> SplitSamples:
    """The images as one split of flat arrays, named ``file_name(image_id)``; boxes as generated (float64
    pixels)."""
    return SplitSamples(
        file_names=[file_name(image.image_id) for image in images],
        widths=np.array([image.width for image in images], dtype=np.int64),
        heights=np.array([image.height for image in images], dtype=np.int64),
        box_counts=np.array([len(image.scene.objects) for image in images], dtype=np.int64),
        boxes=np.concatenate([image.boxes for image in images] + [np.zeros((0, 4))]),
        labels=np.concatenate([image.labels for image in images] + [np.zeros(0, np.int64)]),
        rel_counts=np.array([len(image.annotation.relations) for image in images], dtype=np.int64),
        relations=np.concatenate([image.annotation.relations for image in images]
                                 + [np.zeros((0, 3), np.int64)]).astype(np.int64),
    )


def images_to_arrays(images: list[SynthImage]) -> VGArrays:
    """Concatenate per-image annotations into the h5's flat arrays (global object rows in relationships)."""
    samples = images_to_samples(images, gqa_file_name)
    longer = np.repeat(np.maximum(samples.widths, samples.heights), samples.box_counts)
    return vg_arrays(np.array([image.split for image in images], dtype=np.int64),
                     np.array([image.image_id for image in images], dtype=np.int64), samples,
                     pixel_boxes_to_frame(samples.boxes, longer, BOX_SCALE),
                     np.concatenate([image.attributes for image in images]
                                    + [np.zeros((0, NUM_ATTRIBUTE_SLOTS), np.int64)]))


def _render_images(folder: str, seed: int, jobs: list[tuple[int, str, Scene]]) -> None:
    cv2.setNumThreads(1)
    for image_id, file_name, scene in jobs:
        image = render_scene(scene, np.random.default_rng([seed, image_id, _RENDER_STREAM]))
        with open(os.path.join(folder, file_name), "wb") as handle:
            handle.write(encode_jpeg(image))


def render_images(folder: str, images: list[SynthImage], seed: int, workers: int = 1, oi_names: bool = False) -> None:
    """Write ``<image_id>.jpg`` (``oi_names``: ``<img_fn>.jpg``) for every image into ``folder``, over ``workers``
    processes."""
    jobs = [(image.image_id, (oi_file_name if oi_names else gqa_file_name)(image.image_id), image.scene)
            for image in images]
    if workers <= 1 or len(jobs) < 2 * workers:
        _render_images(folder, seed, jobs)
        return
    chunks = [jobs[start::workers * 4] for start in range(workers * 4)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for finished in [pool.submit(_render_images, folder, seed, chunk) for chunk in chunks]:
            finished.result()


def _generation_info(kind: str, **details) -> dict:
    return {
        "generator": "SynthVG", "kind": kind, **details,
        "annotation_keep_rate": ANNOTATION_KEEP_RATE,
        "general_for_informative_rate": GENERAL_FOR_INFORMATIVE_RATE,
        "duplicate_relation_rate": DUPLICATE_RELATION_RATE,
    }


def _corrupted_sizes(skipped_ids: list[int], seed: int, image_size: int) -> dict[int, tuple[int, int]]:
    return {image_id: sample_image_size(np.random.default_rng([seed, image_id]), image_size)
            for image_id in skipped_ids}


def write_synthvg(output_dir: str, options: SynthVGOptions = SynthVGOptions(), annotations_only: bool = False,
                  overwrite: bool = False, workers: int = 1) -> str:
    """Generate SynthVG into ``<output_dir>/vg`` (atomically) and return that folder's path.

    ``annotations_only`` skips the JPEG images (the loader then fails only when an image is read).
    """
    target = os.path.join(output_dir, "vg")
    _, skipped = image_ids(options.num_images)
    with staged_folder(target, overwrite, MARKER_FILE_NAME) as staging:
        images = generate_images(options)
        write_annotation_files(staging, images_to_arrays(images), _corrupted_sizes(skipped, options.seed,
                                                                                    options.image_size),
                               _generation_info("images" if not annotations_only else "annotations_only",
                                                **asdict(options)))
        image_folder = os.path.join(staging, IMAGE_FOLDER_NAME)
        os.makedirs(image_folder)
        if not annotations_only:
            render_images(image_folder, images, options.seed, workers)
    return os.path.abspath(target)


def _frequencies(ids: np.ndarray, num_ids: int) -> np.ndarray:
    """Relative frequencies of ids 1..num_ids, each seen at least once (add-one). -> (num_ids,) float64."""
    counts = np.bincount(ids, minlength=num_ids + 1)[1:] + 1.0
    return counts / counts.sum()


def write_vg_scale(output_dir: str, seed: int = 0, test_fraction: float = DEFAULT_TEST_FRACTION,
                   overwrite: bool = False) -> str:
    """Write VG-sized annotations (108,073 h5 images, ~1.1 M boxes, ~620 k relations, no images) into
    ``<output_dir>/vg`` for loading benchmarks; return that folder's path. Class, predicate and attribute
    frequencies are those of a scene-sampled SynthVG of ``VG_SCALE_FREQUENCY_IMAGES`` images."""
    with staged_folder(os.path.join(output_dir, "vg"), overwrite, MARKER_FILE_NAME) as staging:
        sample = images_to_arrays(generate_images(SynthVGOptions(VG_SCALE_FREQUENCY_IMAGES, seed)))
        arrays, corrupted_sizes = vg_scale_arrays(
            seed, test_fraction,
            class_probabilities=_frequencies(sample.labels, len(CLASS_TO_ID)),
            predicate_probabilities=_frequencies(sample.predicates, len(PREDICATE_TO_ID)),
            attribute_probabilities=_frequencies(sample.attributes[sample.attributes > 0], len(ATTRIBUTE_TO_ID)),
        )
        write_annotation_files(staging, arrays, corrupted_sizes,
                               _generation_info("vg_scale", seed=seed, test_fraction=test_fraction,
                                                num_images=int(arrays.split.size)))
        os.makedirs(os.path.join(staging, IMAGE_FOLDER_NAME))
    return os.path.abspath(os.path.join(output_dir, "vg"))


def oi_split_arrays(images: list[SynthImage], file_name: Callable[[int], str]) -> SplitSamples:
    """Images as one split of flat arrays (the Open Images and GQA-200 writers' input), named
    ``file_name(image_id)``; boxes rounded to integer pixels."""
    samples = images_to_samples(images, file_name)
    samples.boxes = pixel_boxes_to_frame(samples.boxes, np.ones(len(samples.boxes)), 1)
    return samples


def oi_splits_of(images: list[SynthImage], num_val_images: int) -> dict[str, list[SynthImage]]:
    """test = VG split 2, val = the first ``num_val_images`` of the train pool, train = the rest; images
    without boxes left out."""
    with_boxes = [image for image in images if image.scene.objects]
    pool = [image for image in with_boxes if image.split == _SPLIT_TRAIN]
    return {"train": pool[num_val_images:], "val": pool[:num_val_images],
            "test": [image for image in with_boxes if image.split == _SPLIT_TEST]}


def _write_extras(staging: str, generation_info: dict, image_folder_name: str) -> None:
    """The GloVe file, the generation marker and the (empty) image folder of a JSON-layout SynthVG."""
    with open(os.path.join(staging, GLOVE_FILE_NAME), "w", encoding="utf-8") as handle:
        handle.write(glove_text())
    with open(os.path.join(staging, MARKER_FILE_NAME), "w", encoding="utf-8") as handle:
        json.dump(generation_info, handle, sort_keys=True, indent=1)
    os.makedirs(os.path.join(staging, image_folder_name), exist_ok=True)


def write_synthvg_oi(output_dir: str, options: SynthVGOptions = SynthVGOptions(),
                     num_val_images: int = DEFAULT_OI_VAL_IMAGES, annotations_only: bool = False,
                     overwrite: bool = False, workers: int = 1) -> str:
    """Generate SynthVG's scenes in the Open Images V6 layout into ``<output_dir>/openimages/open_image_v6``
    (atomically) and return that folder's path."""
    if num_val_images < 0:
        raise ValueError(f"num_val_images must be >= 0, got {num_val_images}")
    target = os.path.join(output_dir, OI_FOLDER)
    with staged_folder(target, overwrite, MARKER_FILE_NAME) as staging:
        splits = oi_splits_of(generate_images(options), num_val_images)
        empty = [split for split in SPLITS if not splits[split]]
        if empty:
            raise ValueError(f"no image in the Open Images split(s) {empty}: raise num_images or lower "
                             f"num_val_images / adjust test_fraction")
        write_oi_annotation_files(staging, {split: oi_split_arrays(images, oi_file_name)
                                            for split, images in splits.items()},
                                  sorted(OBJECT_CLASSES), sorted(PREDICATES))
        _write_extras(staging, _generation_info("oiv6_images" if not annotations_only else "oiv6_annotations_only",
                                                num_val_images=num_val_images, **asdict(options)),
                      OI_IMAGE_FOLDER)
        if not annotations_only:
            render_images(os.path.join(staging, OI_IMAGE_FOLDER), [i for s in SPLITS for i in splits[s]],
                          options.seed, workers, oi_names=True)
    return os.path.abspath(target)


def write_synthvg_gqa(output_dir: str, options: SynthVGOptions = SynthVGOptions(), annotations_only: bool = False,
                      overwrite: bool = False, workers: int = 1) -> str:
    """Generate SynthVG's scenes in SHA-GCL's GQA-200 layout into ``<output_dir>/gqa`` (atomically) and return
    that folder's path: the train file holds the VG train pool (images without boxes or relations included,
    as the loader drops them), the test file the VG test split; val is the loader's prefix of test."""
    target = os.path.join(output_dir, GQA_FOLDER)
    with staged_folder(target, overwrite, MARKER_FILE_NAME) as staging:
        images = generate_images(options)
        splits = {split: [image for image in images if image.split == code]
                  for split, code in (("train", _SPLIT_TRAIN), ("test", _SPLIT_TEST))}
        empty = [split for split, members in splits.items() if not members]
        if empty:
            raise ValueError(f"no image in the GQA-200 file(s) {empty}: raise num_images or adjust test_fraction")
        write_gqa_annotation_files(staging, oi_split_arrays(splits["train"], gqa_file_name),
                                   oi_split_arrays(splits["test"], gqa_file_name),
                                   sorted(OBJECT_CLASSES), sorted(PREDICATES))
        _write_extras(staging, _generation_info("gqa200_images" if not annotations_only else "gqa200_annotations_only",
                                                **asdict(options)), GQA_FILES["img_dir"])
        if not annotations_only:
            render_images(os.path.join(staging, GQA_FILES["img_dir"]), splits["train"] + splits["test"],
                          options.seed, workers)
    return os.path.abspath(target)


def write_oi_scale(output_dir: str, seed: int = 0, overwrite: bool = False) -> str:
    """Write Open Images V6-sized annotations (126,368 / 1,813 / 5,322 images, no image files) into
    ``<output_dir>/openimages/open_image_v6`` for loading benchmarks; return that folder's path."""
    target = os.path.join(output_dir, OI_FOLDER)
    with staged_folder(target, overwrite, MARKER_FILE_NAME) as staging:
        write_oi_annotation_files(staging, oi_scale_splits(seed), oi_object_names(), list(OI_PREDICATES))
        _write_extras(staging, _generation_info("oiv6_scale", seed=seed), OI_IMAGE_FOLDER)
    return os.path.abspath(target)


def write_gqa_scale(output_dir: str, seed: int = 0, overwrite: bool = False) -> str:
    """Write GQA-200-sized annotations (60,000 train / 11,000 test records, no image files) into
    ``<output_dir>/gqa`` for loading benchmarks; return that folder's path."""
    target = os.path.join(output_dir, GQA_FOLDER)
    with staged_folder(target, overwrite, MARKER_FILE_NAME) as staging:
        splits = gqa_scale_splits(seed)
        write_gqa_annotation_files(staging, splits["train"], splits["test"], gqa_object_names(),
                                   gqa_predicate_names())
        _write_extras(staging, _generation_info("gqa200_scale", seed=seed), GQA_FILES["img_dir"])
    return os.path.abspath(target)

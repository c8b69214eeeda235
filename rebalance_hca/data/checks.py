"""The dataset checks of tools/check_dataset.py: what relation training will read, checked before it does.

Each ``check_*`` function checks one thing and returns the lines that describe what it found to be fine;
bad input is raised (the caller records it with ``problems_recorded``) or recorded in a ``Findings`` as a
problem (training would fail or read bad data) or a warning (training runs, but look). ``verdict`` ends the
report. docs/data.md describes the checks.
"""
from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from ..config.paths_catalog import resolve_data_dir
from ..utils.cli import UserInputError, user_errors
from .build import MODES, build_dataset, dataset_name, get_dataset_statistics, get_glove_embeddings, rebalance_spec
from .files import DataFormatError
from .scene_graph_dataset import SceneGraphDataset
from .scene_graph_json.checks import json_dataset_problems, json_folders


@dataclass
class Findings:
    """What the checks found, in order and without repeats: problems (training would fail or read bad data)
    and warnings (training runs, but look)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, kind: str, message: str) -> None:
        """Record ``message`` as a "problem" or a "warning" unless it is already recorded."""
        messages = self.problems if kind == "problem" else self.warnings
        if message not in messages:
            messages.append(message)


@contextlib.contextmanager
def problems_recorded(findings: Findings, stage: str) -> Iterator[None]:
    """Record a bad-input error raised in the block (what ``user_errors`` counts as one) as a problem and
    carry on. A DataFormatError is recorded as it is, since its message names the file, so the same bad
    image found by two checks is one problem; other errors are prefixed with ``stage``."""
    try:
        with user_errors(stage):
            yield
    except UserInputError as error:
        cause = error.__cause__
        findings.add("problem", str(cause) if isinstance(cause, DataFormatError) else str(error))


def json_format_problems(cfg) -> list[str]:
    """Every problem of the scene-graph JSON folders that ``cfg``'s train, val and test datasets name, each
    with its file, image, object or relation index and field (none when they are of another family)."""
    folders = json_folders([dataset_name(cfg, mode) for mode in MODES], resolve_data_dir(cfg.DATASETS.DATA_DIR))
    return [problem for folder in folders for problem in json_dataset_problems(folder)]


def predicate_counts(dataset: SceneGraphDataset) -> np.ndarray:
    """Relation rows per predicate id in the split (index 0, background, is 0). -> (P,) int64."""
    return np.bincount(dataset.index.relations[:, 2], minlength=len(dataset.ind_to_predicates))


def summarize_split(mode: str, dataset: SceneGraphDataset) -> str:
    """One line: the split's images, objects and relations, and per image."""
    num_boxes = int(dataset.index.box_count.sum())
    num_relations = len(dataset.index.relations)
    return (f"{mode:5s}: {len(dataset):7d} images  {num_boxes:8d} objects  {num_relations:8d} relations  "
            f"({num_boxes / len(dataset):.1f} objects, {num_relations / len(dataset):.1f} relations per image)")


def predicate_long_tail(dataset: SceneGraphDataset) -> list[str]:
    """The split's predicates with their relation counts, most frequent first, then the head/tail ratio."""
    counts = predicate_counts(dataset)[1:]
    order = np.argsort(-counts, kind="stable")
    lines = [f"  {dataset.ind_to_predicates[i + 1]:>16s} {counts[i]:8d}" for i in order]
    head, tail = counts[order[0]], max(counts[order[-1]], 1)
    lines.append(f"  head/tail ratio: {head / tail:.0f}")
    return lines


def check_glove(cfg, dataset: SceneGraphDataset) -> list[str]:
    """The GloVe vectors the relation head embeds its object classes and predicates with; non-finite
    values are a problem."""
    start = time.perf_counter()
    names = [*dataset.ind_to_classes, *dataset.ind_to_predicates]
    vectors = get_glove_embeddings(cfg, names)
    dim = cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM
    if not bool(torch.isfinite(vectors).all()):
        raise DataFormatError(f"glove.6B.{dim}d in {cfg.GLOVE_DIR} has non-finite values among the vectors of "
                              f"this dataset's names")
    return [f"GloVe vectors ({dim}-d, GLOVE_DIR {cfg.GLOVE_DIR}) for {len(dataset.ind_to_classes)} object "
            f"classes and {len(dataset.ind_to_predicates)} predicates in {time.perf_counter() - start:.2f} s"]


def check_statistics(cfg) -> list[str]:
    """The frequency statistics of the train split (computed, or read from OUTPUT_DIR's cache)."""
    start = time.perf_counter()
    statistics = get_dataset_statistics(cfg)
    return [f"frequency statistics in {time.perf_counter() - start:.2f} s: "
            f"{int(statistics.fg_matrix[:, :, 1:].sum())} relations counted, cache in {cfg.OUTPUT_DIR}"]


def check_rebalanced_split(cfg) -> list[str]:
    """The stage-2 train split beside the stage-1 one: sizes, and the capped top-K predicates' counts."""
    stage2 = build_dataset(cfg, "train", with_transforms=False, rebalance=True)
    stage1 = build_dataset(cfg, "train", with_transforms=False, rebalance=False)
    spec = rebalance_spec(cfg)
    before, after = predicate_counts(stage1), predicate_counts(stage2)
    lines = [f"stage-2 train split (top {spec.top_k} predicates capped at {spec.max_instances} relations each): "
             f"{len(stage2)} images, {len(stage2.index.relations)} relations "
             f"(stage 1: {len(stage1)} images, {len(stage1.index.relations)} relations)",
             f"  {'predicate':>16s} {'stage 1':>8s} {'stage 2':>8s}"]
    lines += [f"  {stage1.ind_to_predicates[p]:>16s} {before[p]:8d} {after[p]:8d}"
              for p in spec.predicate_order[:spec.top_k]]
    return lines


def check_samples(datasets: dict[str, SceneGraphDataset], num_samples: int, findings: Findings) -> list[str]:
    """Load the first ``num_samples`` samples of each split through the transforms, as the loaders do."""
    problems_before, loaded = len(findings.problems), 0
    for mode, dataset in datasets.items():
        for index in range(min(num_samples, len(dataset))):
            with problems_recorded(findings, f"{mode} sample {index}"):
                dataset[index]
            loaded += 1
    return [f"loaded {loaded} samples ({num_samples} per split at most) through the transforms: "
            f"{len(findings.problems) - problems_before} failed"]


def image_finding(dataset: SceneGraphDataset, index: int) -> tuple[str, str] | None:
    """("problem", message) for a missing or undecodable image, ("warning", message) for one whose decoded
    size differs from image_data.json's, None for a good one."""
    try:
        image = dataset.load_image(index)
    except DataFormatError as error:
        return "problem", str(error)
    height, width = image.shape[:2]
    listed_width, listed_height = int(dataset.widths[index]), int(dataset.heights[index])
    if (width, height) != (listed_width, listed_height):
        return "warning", (f"{dataset.image_path(index)} decodes to {width}x{height} but {dataset.SIZE_SOURCE} lists "
                           f"{listed_width}x{listed_height}; the loader rescales its boxes")
    return None


def check_images(datasets: dict[str, SceneGraphDataset], workers: int, findings: Findings) -> list[str]:
    """Decode every image of every split on ``workers`` threads (OpenCV decodes without holding the GIL)."""
    start, decoded = time.perf_counter(), 0
    with ThreadPoolExecutor(workers) as pool:
        for mode, dataset in datasets.items():
            results = pool.map(partial(image_finding, dataset), range(len(dataset)))
            for result in tqdm(results, total=len(dataset), desc=f"decoding {mode} images", unit="image"):
                if result is not None:
                    findings.add(*result)
            decoded += len(dataset)
    return [f"decoded {decoded} images in {time.perf_counter() - start:.1f} s"]


def verdict(findings: Findings, datasets: dict[str, SceneGraphDataset], full: bool) -> list[str]:
    """The warnings and problems, one per line, then the verdict line."""
    lines = [f"warning: {message}" for message in findings.warnings]
    lines += [f"problem: {message}" for message in findings.problems]
    warned = f", {len(findings.warnings)} warning(s)" if findings.warnings else ""
    if findings.problems:
        lines.append(f"dataset check: {len(findings.problems)} problem(s){warned}")
    else:
        scope = "every image decoded" if full else "sampled images only; --full decodes every image"
        images = sum(len(dataset) for dataset in datasets.values())
        lines.append(f"dataset check: OK ({images} images in {len(datasets)} splits, {scope}{warned})")
    return lines

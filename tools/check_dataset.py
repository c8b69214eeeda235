"""Check a VG150-format dataset for what relation training will read, and summarise it.

    python tools/check_dataset.py --config-file configs/synthetic/relation_HCA_R18_FPN.yaml [--full] [KEY VALUE ...]

Builds the train/val/test splits named by DATASETS.* and prints their sizes and the predicate long tail of
the train split (a scene-graph JSON dataset's files are first checked record by record, every problem
named with its file, image, object or relation index and field: docs/data.md#scene-graph-json; any problem
there ends the check). Then checks, listing every problem found rather than stopping at the first:
  * the GloVe vectors of the object classes and predicates (GLOVE_DIR/glove.6B.<EMBED_DIM>d.txt);
  * the frequency statistics (cached in OUTPUT_DIR);
  * the stage-2 rebalanced train split (MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER True), with the
    per-predicate counts of the capped top-K predicates before and after rebalancing;
  * --num-samples samples of each split, loaded through the transforms;
  * with --full, every image of every split, decoded as training decodes it (OpenCV): a missing or
    undecodable file is a problem, a decoded size other than image_data.json's a warning (the loader
    rescales that image's boxes).

The last line is the verdict: ``dataset check: OK (...)`` or ``dataset check: N problem(s)``, after the
problems and warnings listed one per line. Exit code 0: no problem (warnings allowed); 1: problems listed;
2: the check could not run (a bad config, or annotation files from which the splits cannot be built),
reported as one line on stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from rebalance_hca.config import load_config
from rebalance_hca.data import (DataFormatError, SceneGraphDataset, build_dataset, get_dataset_statistics,
                                get_glove_embeddings)
from rebalance_hca.config.paths_catalog import resolve_data_dir
from rebalance_hca.data.build import MODES, dataset_name, rebalance_spec
from rebalance_hca.data.scene_graph_json.checks import json_dataset_problems, json_folders
from rebalance_hca.utils.cli import UserInputError, run_tool, user_errors

DEFAULT_WORKERS = min(8, os.cpu_count() or 1)


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the yaml config")
    parser.add_argument("--num-samples", type=int, default=4, help="samples per split to load and transform")
    parser.add_argument("--full", action="store_true", help="decode every image of every split")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"threads decoding images with --full (default {DEFAULT_WORKERS})")
    parser.add_argument("opts", nargs="*", default=[], help="config overrides as KEY VALUE pairs")
    args, unknown = parser.parse_known_args(argv)
    args.opts = [*args.opts, *unknown]  # flags may also follow the overrides
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    return args


def predicate_counts(dataset: SceneGraphDataset) -> np.ndarray:
    """Relation rows per predicate id in the split (index 0, background, is 0). -> (P,) int64."""
    return np.bincount(dataset.index.relations[:, 2], minlength=len(dataset.ind_to_predicates))


def summarize_split(mode: str, dataset: SceneGraphDataset) -> str:
    num_boxes = int(dataset.index.box_count.sum())
    num_relations = len(dataset.index.relations)
    return (f"{mode:5s}: {len(dataset):7d} images  {num_boxes:8d} objects  {num_relations:8d} relations  "
            f"({num_boxes / len(dataset):.1f} objects, {num_relations / len(dataset):.1f} relations per image)")


def predicate_long_tail(dataset: SceneGraphDataset) -> list[str]:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks and print the report. -> 0 when no problem was found, else 1.

    Raises UserInputError when the config cannot be read or the splits cannot be built.
    """
    args = parse_args(argv)
    with user_errors("reading the config"):
        cfg = load_config(args.config_file, args.opts)
    with user_errors("checking the scene-graph JSON files"):
        json_problems = [problem for folder in json_folders([dataset_name(cfg, mode) for mode in MODES],
                                                            resolve_data_dir(cfg.DATASETS.DATA_DIR))
                         for problem in json_dataset_problems(folder)]
    if json_problems:
        print("\n".join(f"problem: {problem}" for problem in json_problems))
        print(f"dataset check: {len(json_problems)} problem(s)")
        return 1
    start = time.perf_counter()
    with user_errors("building the splits"):
        datasets = {mode: build_dataset(cfg, mode) for mode in MODES}
    print(f"splits built in {time.perf_counter() - start:.2f} s")
    for mode, dataset in datasets.items():
        print(summarize_split(mode, dataset))
    print("train predicates, most frequent first:")
    print("\n".join(predicate_long_tail(datasets["train"])))

    findings = Findings()
    checks = [("GloVe vectors", partial(check_glove, cfg, datasets["train"])),
              ("frequency statistics", partial(check_statistics, cfg)),
              ("stage-2 rebalanced split", partial(check_rebalanced_split, cfg))]
    for stage, check in checks:
        with problems_recorded(findings, stage):
            print("\n".join(check()))
    print("\n".join(check_samples(datasets, args.num_samples, findings)))
    if args.full:
        print("\n".join(check_images(datasets, args.workers, findings)))
    print("\n".join(verdict(findings, datasets, args.full)))
    return 1 if findings.problems else 0


if __name__ == "__main__":
    run_tool(lambda: sys.exit(main()))

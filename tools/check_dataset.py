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
import os
import sys
import time
from functools import partial
from typing import Sequence

from rebalance_hca.data import build_dataset
from rebalance_hca.data.build import MODES
from rebalance_hca.data.checks import (Findings, check_glove, check_images, check_rebalanced_split, check_samples,
                                       check_statistics, json_format_problems, predicate_long_tail,
                                       problems_recorded, summarize_split, verdict)
from rebalance_hca.engine import launch
from rebalance_hca.utils.cli import UserInputError, run_tool, user_errors

DEFAULT_WORKERS = min(8, os.cpu_count() or 1)


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-samples", type=int, default=4, help="samples per split to load and transform")
    parser.add_argument("--full", action="store_true", help="decode every image of every split")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"threads decoding images with --full (default {DEFAULT_WORKERS})")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Check a dataset for what relation training will read, and summarise it", argv,
                             extra_arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks and print the report. -> 0 when no problem was found, else 1.

    Raises UserInputError when the config cannot be read or the splits cannot be built.
    """
    args = parse_args(argv)
    if args.workers < 1:
        raise UserInputError(f"--workers must be at least 1, got {args.workers}")
    cfg = launch.load_tool_config(args)
    with user_errors("checking the scene-graph JSON files"):
        json_problems = json_format_problems(cfg)
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

"""Write the zero-shot triplets of a split: its (subject class, object class, predicate) absent from train.

    python tools/compute_zeroshot_triplets.py --config-file CONFIG --output PATH [--split test] [KEY VALUE ...]

The file has SGB's ``zeroshot_triplet.pytorch`` format: an int64 tensor (T, 3), unique rows sorted
lexicographically. The train split is taken without stage-2 rebalancing; every relation row counts
(no duplicate filtering on the evaluated split, as SGB's evaluation GT).
"""
from __future__ import annotations

import argparse
from typing import Sequence

from rebalance_hca.data import build_dataset
from rebalance_hca.engine import launch
from rebalance_hca.evaluation import save_zeroshot_triplets, zeroshot_triplets_from_datasets
from rebalance_hca.utils.cli import run_tool, user_errors


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, metavar="PATH", help="zero-shot triplet file to write")
    parser.add_argument("--split", default="test", choices=("val", "test"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Write the zero-shot triplets of a split (absent from the train split)", argv,
                             extra_arguments)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    # the train split as in stage 1: without stage-2 rebalancing, whatever the config trains
    with user_errors("building the train and the evaluated split"):
        train = build_dataset(cfg, "train", with_transforms=False, rebalance=False)
        evaluated = build_dataset(cfg, args.split, with_transforms=False)
    triplets = zeroshot_triplets_from_datasets(train, evaluated)
    with user_errors(f"writing {args.output}"):
        save_zeroshot_triplets(args.output, triplets)
    print(f"wrote {len(triplets)} zero-shot triplets to {args.output}")


if __name__ == "__main__":
    run_tool(main)

"""Write the zero-shot triplets of a split: its (subject class, object class, predicate) absent from train.

    python tools/compute_zeroshot_triplets.py --config-file CONFIG --output PATH [--split test] [KEY VALUE ...]

The file has SGB's ``zeroshot_triplet.pytorch`` format: an int64 tensor (T, 3), unique rows sorted
lexicographically. The train split is taken without stage-2 rebalancing; every relation row counts
(no duplicate filtering on the evaluated split, as SGB's evaluation GT).
"""
from __future__ import annotations

import argparse
from typing import Sequence


from rebalance_hca.config import load_config
from rebalance_hca.data import build_dataset
from rebalance_hca.evaluation import save_zeroshot_triplets, zeroshot_triplets_from_datasets


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the yaml config")
    parser.add_argument("--output", required=True, metavar="PATH", help="zero-shot triplet file to write")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("opts", nargs="*", default=[], help="config overrides as KEY VALUE pairs")
    args = parser.parse_args(argv)
    cfg = load_config(args.config_file or None, args.opts)
    # the train split as in stage 1: without stage-2 rebalancing, whatever the config trains
    triplets = zeroshot_triplets_from_datasets(build_dataset(cfg, "train", with_transforms=False, rebalance=False),
                                               build_dataset(cfg, args.split, with_transforms=False))
    save_zeroshot_triplets(args.output, triplets)
    print(f"wrote {len(triplets)} zero-shot triplets to {args.output}")


if __name__ == "__main__":
    main()

"""Check a VG150-format dataset the way training will read it, and summarise it.

    python tools/check_dataset.py --config-file configs/synthetic/relation_predcls.yaml [KEY VALUE ...]

Builds the train/val/test splits named by DATASETS.*, the frequency statistics (cached in OUTPUT_DIR),
loads a few samples through the configured transforms, and prints split sizes, object/relation counts and
the predicate long tail of the train split. Any problem is reported with the file and field at fault.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from rebalance_hca.config import load_config
from rebalance_hca.data import build_dataset, get_dataset_statistics


def summarize_split(mode: str, dataset) -> str:
    num_boxes = int(dataset.index.box_count.sum())
    num_relations = len(dataset.index.relations)
    return (f"{mode:5s}: {len(dataset):7d} images  {num_boxes:8d} objects  {num_relations:8d} relations  "
            f"({num_boxes / len(dataset):.1f} objects, {num_relations / len(dataset):.1f} relations per image)")


def predicate_long_tail(dataset) -> list[str]:
    counts = np.bincount(dataset.index.relations[:, 2], minlength=len(dataset.ind_to_predicates))[1:]
    order = np.argsort(-counts, kind="stable")
    lines = [f"  {dataset.ind_to_predicates[i + 1]:>16s} {counts[i]:8d}" for i in order]
    head, tail = counts[order[0]], max(counts[order[-1]], 1)
    lines.append(f"  head/tail ratio: {head / tail:.0f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="")
    parser.add_argument("--num-samples", type=int, default=4, help="samples per split to load and transform")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    args = parser.parse_args()
    cfg = load_config(args.config_file, args.opts)

    start = time.perf_counter()
    datasets = {mode: build_dataset(cfg, mode) for mode in ("train", "val", "test")}
    print(f"splits built in {time.perf_counter() - start:.2f} s")
    for mode, dataset in datasets.items():
        print(summarize_split(mode, dataset))
    start = time.perf_counter()
    statistics = get_dataset_statistics(cfg)
    print(f"frequency statistics in {time.perf_counter() - start:.2f} s: "
          f"{int(statistics.fg_matrix[:, :, 1:].sum())} relations counted, cache in {cfg.OUTPUT_DIR}")
    for mode, dataset in datasets.items():
        for index in range(min(args.num_samples, len(dataset))):
            image, target, _ = dataset[index]
            assert image.shape[0] == 3 and target["boxes"].shape[0] == target["relation"].shape[0]
    print(f"loaded {args.num_samples} samples per split through the transforms: OK")
    print("train predicates, most frequent first:")
    print("\n".join(predicate_long_tail(datasets["train"])))


if __name__ == "__main__":
    main()

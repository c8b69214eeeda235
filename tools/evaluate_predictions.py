"""Evaluate a saved predictions file against a dataset split and print SGB's report.

    python tools/evaluate_predictions.py --config-file CONFIG --predictions PATH [--split test]
        [--output-dir DIR] [--zeroshot-triplets PATH] [--no-detection] [KEY VALUE ...]

The predictions file (``rebalance_hca.evaluation.save_predictions``; format in docs/evaluation.md) holds
one split's compact predictions, indexed by dataset index. The split is built from the config (the same
config, so the same indices, as the run that wrote the file); the ground truth is SGB's
``get_groundtruth(i, evaluation=True)``. Zero-shot triplets come from ``--zeroshot-triplets`` (e.g. SGB's
``zeroshot_triplet.pytorch``) or else are computed as the split's triplets absent from the train split;
the head/body/tail groups use the train split's predicate counts (without stage-2 rebalancing).
Writes ``<split>_report.txt``, ``<split>_results.json`` and ``<split>_per_predicate_recall.png`` to
``--output-dir`` (default: the predictions file's folder).

The split is evaluated with its dataset family's protocol: a split of an Open Images dataset with PySGG's
OI protocol (docs/evaluation.md): PySGG's OI report, ``<split>_results.json`` and
``<split>_per_predicate_ap.png``; the file must hold OI candidates (written by a test run on that split).
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from rebalance_hca.data import build_dataset, family_of
from rebalance_hca.data.build import dataset_name
from rebalance_hca.engine import launch
from rebalance_hca.engine.relation_runs import evaluate_predictions_file
from rebalance_hca.evaluation.predictions_io import iter_predictions, read_predictions_header
from rebalance_hca.modeling import relation_mode
from rebalance_hca.utils.cli import UserInputError, run_tool, user_errors


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, metavar="PATH", help="predictions file (.npz)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--output-dir", default=None, help="where the report files go")
    parser.add_argument("--zeroshot-triplets", default=None, metavar="PATH",
                        help="(T, 3) int64 torch file; default: computed from the train split")
    parser.add_argument("--no-detection", action="store_true", help="skip the detector mAP")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Evaluate a saved predictions file against a dataset split", argv, extra_arguments)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    with user_errors("reading the predictions"):
        saved = read_predictions_header(args.predictions)
    config_mode = relation_mode(cfg)
    if saved["mode"] != config_mode:
        raise UserInputError(f"{args.predictions}: predictions are for {saved['mode']}, the config describes "
                             f"{config_mode} (MODEL.ROI_RELATION_HEAD.USE_GT_BOX / USE_GT_OBJECT_LABEL)")
    with user_errors(f"building the {args.split} split"):
        dataset = build_dataset(cfg, args.split, with_transforms=False)
    image_ids = saved["image_ids"]
    expected_size = saved["metadata"].get("dataset_size")
    if expected_size is not None and int(expected_size) != len(dataset):
        raise UserInputError(f"{args.predictions}: written for a split of {expected_size} images, the {args.split} "
                             f"split of this config has {len(dataset)}")
    if len(image_ids) and (image_ids.min() < 0 or image_ids.max() >= len(dataset)):
        raise UserInputError(f"{args.predictions}: image ids up to {int(image_ids.max())}, the {args.split} split "
                             f"has {len(dataset)} images")
    num_predicates = len(dataset.ind_to_predicates)
    if saved["num_predicates"] != num_predicates:
        raise UserInputError(f"{args.predictions}: {saved['num_predicates']} predicates, the dataset has "
                             f"{num_predicates}")
    name = dataset_name(cfg, args.split)
    protocol = family_of(name).protocol
    with user_errors("reading the predictions"):
        problem = protocol.unusable_predictions(prediction for _, prediction in iter_predictions(args.predictions))
    if problem:
        raise UserInputError(f"{args.predictions}: {problem} (the {args.split} split is {name}); write the file "
                             f"with tools/relation_test_net.py on this split")
    output_dir = args.output_dir or os.path.dirname(os.path.abspath(args.predictions))
    evaluation, paths = evaluate_predictions_file(
        cfg, protocol, dataset, args.split, os.path.abspath(args.predictions), output_dir, args.zeroshot_triplets,
        with_detection=not args.no_detection, whole_split=False)
    print(evaluation["report"], end="")
    print("wrote " + ", ".join(paths.values()))
    return evaluation


if __name__ == "__main__":
    run_tool(main)

"""Relation testing (SGB's ``tools/relation_test_net.py``), torchrun-ready.

    python tools/relation_test_net.py --config-file CONFIG MODEL.WEIGHT RUN/model_final.pth [KEY VALUE ...]

Tests MODEL.WEIGHT, or, when it is empty, the last checkpoint of OUTPUT_DIR (the log says which file),
on DATASETS.TEST (DATASETS.VAL with TEST.VAL_FLAG True). A predictor that needs no training
(FrequencyBaselinePredictor) is tested without weights. Writes OUTPUT_DIR/inference/<dataset>/:
predictions.npz, <split>_report.txt (SGB's report, also printed), <split>_results.json and
<split>_per_predicate_recall.png. The test set is evaluated with its dataset family's protocol: an Open
Images test set (openimage_v6_test) with PySGG's OI protocol: PySGG's OI report, <split>_results.json and
<split>_per_predicate_ap.png (docs/evaluation.md). With TEST.ALLOW_LOAD_FROM_CACHE True a predictions file
of the same weights, data and config is reused instead of predicting again.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from rebalance_hca.engine import launch
from rebalance_hca.engine.relation_runs import (check_relation_config, load_weights_for_testing, run_description,
                                                test_relation_model)
from rebalance_hca.modeling import build_model
from rebalance_hca.utils.cli import run_tool, user_errors


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zeroshot-triplets", default=None, metavar="PATH",
                        help="(T, 3) int64 torch file of zero-shot triplets (e.g. SGB's zeroshot_triplet.pytorch); "
                             "default: the test split's triplets absent from the train split")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Relation testing", argv, extra_arguments)


def main(argv: Sequence[str] | None = None) -> dict:
    """Test; returns the evaluation on rank 0 ({} otherwise)."""
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    check_relation_config(cfg)
    with launch.session(cfg, config_header=run_description(cfg)) as (device, distributed, _):
        with user_errors("loading the model to test"):
            model = build_model(cfg)
            weights = load_weights_for_testing(cfg, model)
        return test_relation_model(cfg, model.to(device), device, distributed, weights, args.zeroshot_triplets)


if __name__ == "__main__":
    run_tool(main)

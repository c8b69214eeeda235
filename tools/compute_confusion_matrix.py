"""The predicate confusion matrix that ReBalance-HCA's stage 2 needs and that no reference code writes.

    python tools/compute_confusion_matrix.py --config-file CONFIG MODEL.WEIGHT STAGE1/model_final.pth \
        [--output PATH] [KEY VALUE ...]

Runs a trained model (MODEL.WEIGHT, else OUTPUT_DIR's last checkpoint) in PredCls (or SGCls) over the whole
train split, without stage-2 rebalancing and with test-time transforms, and counts, for every GT relation,
its predicate (row) against the model's top-1 foreground predicate for that subject-object pair (column)
(docs/reference.md#confusion-matrix; G2S's SGConfMat). Writes a (P, P) float32 .npy atomically (default
OUTPUT_DIR/predicate_confusion_matrix.npy), the file for MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

import numpy as np

from rebalance_hca.engine import launch
from rebalance_hca.engine.relation_runs import (check_relation_config, confusion_matrix_of_train_split,
                                                load_weights_for_testing)
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.relation_head.confusion import uninformative_confusion
from rebalance_hca.utils.atomic import atomic_write
from rebalance_hca.utils.cli import run_tool, user_errors

DEFAULT_FILE_NAME = "predicate_confusion_matrix.npy"


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="", metavar="PATH",
                        help=f"where the .npy goes (default: OUTPUT_DIR/{DEFAULT_FILE_NAME})")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Predicate confusion matrix over the train split", argv, extra_arguments)


def summary(matrix: np.ndarray, predicate_names: Sequence[str]) -> str:
    """Counted relations, top-1 accuracy and the most frequent confusions, for the log."""
    total = matrix.sum()
    lines = [f"{int(total)} GT relations counted, top-1 predicate accuracy {np.trace(matrix) / max(total, 1):.4f}"]
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    for flat in np.argsort(-off_diagonal, axis=None)[:5]:
        row, column = np.unravel_index(flat, matrix.shape)
        if off_diagonal[row, column] > 0:
            lines.append(f"  {predicate_names[row]} -> {predicate_names[column]}: {int(off_diagonal[row, column])}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    """Compute and write the matrix; returns its path on rank 0 ("" otherwise)."""
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    check_relation_config(cfg)
    output = args.output or os.path.join(cfg.OUTPUT_DIR, DEFAULT_FILE_NAME)
    with launch.session(cfg) as (device, distributed, logger):
        with user_errors("loading the model"):
            model = build_model(cfg)
            weights = load_weights_for_testing(cfg, model)
        with user_errors("counting the confusion matrix"):
            counted = confusion_matrix_of_train_split(cfg, model.to(device), device, distributed, weights)
        if counted is None:
            return ""
        matrix, predicate_names = counted
        with atomic_write(output) as stream:
            np.save(stream, matrix)
        logger.info("Wrote the predicate confusion matrix %s (%d x %d): %s", output, *matrix.shape,
                    summary(matrix, predicate_names))
        problem = uninformative_confusion(matrix)
        if problem:
            logger.warning("%s: %s. Stage 2 and the transfer classifier refuse it.", output, problem)
        return output


if __name__ == "__main__":
    run_tool(main)

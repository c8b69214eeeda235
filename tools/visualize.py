"""Ground truth and saved predictions side by side, for studying errors one image at a time.

    python tools/visualize.py --config-file CONFIG --predictions RUN/inference/<dataset>/predictions.npz \
        --split test --index 0 [7 12 ...] --output errors.png [--k 50] [--top-wrong 5] [KEY VALUE ...]

For each dataset index of the split (several indices make a grid, one row each), draws the ground truth with
the GT triplets the predictions find within the top K (green) and those they miss (red), the top wrong
predictions (orange), and the lists in words. The matching is SGGEvaluator's (R@K, TEST.RELATION.IOU_THRESHOLD).
The predictions file is tools/relation_test_net.py's (docs/evaluation.md).
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from rebalance_hca.data import build_dataset
from rebalance_hca.engine import launch
from rebalance_hca.engine.relation_inference import groundtruth_for_evaluation
from rebalance_hca.evaluation import SGGEvaluator, load_predictions
from rebalance_hca.utils.cli import UserInputError, run_tool, user_errors
from rebalance_hca.visualization.error_analysis import ErrorAnalysisImage, draw_error_analysis


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, metavar="PATH", help="a predictions file (.npz)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="the split the predictions are of (test)")
    parser.add_argument("--index", type=int, nargs="+", required=True, metavar="I",
                        help="dataset indices of the split; several make a grid")
    parser.add_argument("--output", required=True, metavar="PNG", help="where the PNG goes")
    parser.add_argument("--k", type=int, default=50, help="a GT triplet is found within the top K (50)")
    parser.add_argument("--top-wrong", type=int, default=5, metavar="N",
                        help="the N best-ranked wrong predictions shown (5)")
    parser.add_argument("--panel-size", type=int, default=480, metavar="PIXELS", help="side of each panel (480)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("Ground truth and predictions side by side", argv, extra_arguments)


def main(argv: Sequence[str] | None = None) -> str:
    """Draw and return the PNG's path."""
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    if args.k < 1 or args.top_wrong < 0 or args.panel_size < 1:
        raise UserInputError("--k and --panel-size must be >= 1, --top-wrong >= 0")
    with user_errors("reading the predictions"):
        saved = load_predictions(args.predictions)
    with user_errors("building the dataset"):
        dataset = build_dataset(cfg, args.split, with_transforms=False, rebalance=False)
    by_index = {int(index): prediction for index, prediction in zip(saved["image_ids"], saved["predictions"])}
    if saved["metadata"].get("dataset_size", len(dataset)) != len(dataset):
        raise UserInputError(f"{args.predictions} was written for a split of {saved['metadata']['dataset_size']} "
                             f"images; this config's {args.split} split has {len(dataset)}")
    missing = [index for index in args.index if index not in by_index]
    if missing:
        raise UserInputError(f"{args.predictions} has no prediction for index {missing[0]} "
                             f"(it holds {len(by_index)} images of the {args.split} split)")
    evaluator = SGGEvaluator(saved["mode"], saved["num_predicates"], iou_threshold=cfg.TEST.RELATION.IOU_THRESHOLD,
                             recall_ks=(args.k,))
    images = []
    for index in args.index:
        groundtruth = groundtruth_for_evaluation(dataset, index)
        with user_errors(f"reading image {index}"):
            match = evaluator.match_image(groundtruth, by_index[index], where=f"image {index}")
            image = dataset.load_image(index)
        images.append(ErrorAnalysisImage(
            image, groundtruth["boxes"].numpy(), groundtruth["labels"].numpy(), groundtruth["relations"].numpy(),
            match, f"{args.split} index {index} (image id {dataset.get_img_info(index)['image_id']})"))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    draw_error_analysis(args.output, images, dataset.ind_to_classes, dataset.ind_to_predicates, args.k,
                        args.top_wrong, args.panel_size)
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    run_tool(main)

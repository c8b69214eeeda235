"""Export the relation model given detections as TorchScript, and check it against PyTorch.

    python tools/export_model.py --config-file CONFIG MODEL.WEIGHT RUN/model_final.pth \
        --output relation_model.pt --image-size WIDTH HEIGHT --num-objects N [KEY VALUE ...]

The config must be PredCls or SGCls (MODEL.ROI_RELATION_HEAD.USE_GT_BOX True); an SGDet model's weights export
as SGCls. The module is traced for images of WIDTH x HEIGHT (resized by the config's test transform and padded
to DATALOADER.SIZE_DIVISIBILITY) and N given objects; what it takes and returns, and why the detector and
SGDet's label decoding are not inside: docs/demo.md. After saving, the file is loaded back and its outputs on
--num-checks seeded sample inputs are compared with the PyTorch model's: pair indices and labels must be
equal, scores within --tolerance; the largest differences are printed (last line: one JSON object) and a
failed check exits with code 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Sequence

import torch

from rebalance_hca.data.transforms import resized_size
from rebalance_hca.engine import launch
from rebalance_hca.engine.export import (ExportShape, export_relation_model, max_differences, pytorch_outputs,
                                         sample_inputs)
from rebalance_hca.engine.relation_runs import check_relation_config, load_weights_for_testing
from rebalance_hca.modeling import build_model, relation_mode
from rebalance_hca.utils.atomic import atomic_write
from rebalance_hca.utils.cli import UserInputError, run_tool, user_errors

EXACT_OUTPUTS = ("labels", "rel_pair_idxs", "rel_labels")
DEFAULT_TOLERANCE = 1e-5


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, metavar="PATH", help="the TorchScript file (.pt)")
    parser.add_argument("--image-size", type=int, nargs=2, required=True, metavar=("WIDTH", "HEIGHT"),
                        help="the original size of the images it will see (e.g. a camera's frames)")
    parser.add_argument("--num-objects", type=int, required=True, metavar="N", help="given objects per image (>= 2)")
    parser.add_argument("--num-checks", type=int, default=3, metavar="S", help="sample inputs compared (3)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest absolute difference of a score (default {DEFAULT_TOLERANCE})")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return launch.parse_args("TorchScript export of the relation model given detections", argv, extra_arguments)


def export_shape(cfg, width: int, height: int, num_objects: int) -> ExportShape:
    """The traced shape of WIDTH x HEIGHT images after the test resize and padding, N objects."""
    resized_height, resized_width = resized_size(width, height, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    divisor = max(cfg.DATALOADER.SIZE_DIVISIBILITY, 1)
    return ExportShape(resized_height, resized_width, math.ceil(resized_height / divisor) * divisor,
                       math.ceil(resized_width / divisor) * divisor, num_objects, cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES)


def main(argv: Sequence[str] | None = None) -> dict:
    """Export and check; returns {"output", "shape", "max_differences", "tolerance", "passed"}."""
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    check_relation_config(cfg)
    mode = relation_mode(cfg)
    if mode == "sgdet":
        raise UserInputError("SGDet cannot be exported (its label decoding is a numpy per-class NMS, see "
                             "docs/demo.md): export the same weights as SGCls with "
                             "MODEL.ROI_RELATION_HEAD.USE_GT_BOX True")
    if args.num_objects < 2 or min(args.image_size) < 1 or args.num_checks < 1:
        raise UserInputError("--num-objects must be >= 2, --image-size positive and --num-checks >= 1")
    shape = export_shape(cfg, *args.image_size, args.num_objects)
    with launch.session(cfg) as (_, _, logger):
        with user_errors("loading the model"):
            model = build_model(cfg)
            weights = load_weights_for_testing(cfg, model)
        model = model.cpu().eval()
        exported = export_relation_model(model, shape, sample_inputs(shape, mode, seed=0))
        with atomic_write(args.output) as stream:
            torch.jit.save(exported, stream)
        loaded = torch.jit.load(args.output)
        worst = {}
        for seed in range(1, args.num_checks + 1):
            inputs = sample_inputs(shape, mode, seed)
            with torch.no_grad():
                differences = max_differences(pytorch_outputs(model, shape, *inputs), loaded(*inputs))
            worst = {name: max(worst.get(name, 0.0), value) for name, value in differences.items()}
        passed = all(worst[name] == 0 for name in EXACT_OUTPUTS) and max(worst.values()) <= args.tolerance
        logger.info("Exported %s (weights %s) to %s for %s", mode, weights or "(none)", args.output, shape)
        result = {"output": os.path.abspath(args.output), "mode": mode, "shape": shape.__dict__,
                  "max_differences": worst, "tolerance": args.tolerance, "passed": passed}
        print(json.dumps(result))
    if not passed:
        print(f"error: the exported module differs from PyTorch beyond {args.tolerance}: {worst}", file=sys.stderr)
        sys.exit(1)
    return result


if __name__ == "__main__":
    run_tool(main)

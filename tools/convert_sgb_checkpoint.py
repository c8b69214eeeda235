"""Convert a Scene-Graph-Benchmark (SGB) checkpoint into this project's checkpoint format.

    python tools/convert_sgb_checkpoint.py --config-file CONFIG --input SGB.pth --output OURS.pth [KEY VALUE ...]

The input is SGB's ``model_final.pth`` as it is, with or without ``module.``, zip or legacy serialisation,
float16 or float32 buffers. A detector (or, with a detector CONFIG, a relation model's detector part) is mapped
onto the detector that CONFIG builds, checked and refused exactly as MODEL.PRETRAINED_DETECTOR_CKPT would be
(docs/detector.md, "SGB checkpoints"); a relation model, with a relation CONFIG (MODEL.RELATION_ON True, its
predictor and options, and the dataset it was trained on), onto the whole scene-graph model, as MODEL.WEIGHT
would load it (docs/checkpoints.md). The result is written atomically as ``{"model": state dict,
"box_convention": "sgb"}``, which MODEL.PRETRAINED_DETECTOR_CKPT / MODEL.WEIGHT (a relation model: MODEL.WEIGHT
or MODEL.PRETRAINED_MODEL_CKPT) load directly, and which selects MODEL.BOX_CONVENTION sgb unless the config sets
it. Importing at load time needs no conversion; this tool saves the mapping step and checks a file once, offline.
"""
from __future__ import annotations

import argparse
import logging
from typing import Sequence

import torch

from rebalance_hca.engine import launch
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.detector import build_detector
from rebalance_hca.modeling.sgb_checkpoint import is_sgb_state
from rebalance_hca.modeling.weights import BOX_CONVENTION_ENTRY, load_model_weights, model_state_of, read_checkpoint
from rebalance_hca.utils.atomic import atomic_write
from rebalance_hca.utils.cli import UserInputError, run_tool, user_errors
from rebalance_hca.utils.logging import setup_logger


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="SGB.pth", help="SGB detector or relation checkpoint")
    parser.add_argument("--output", required=True, metavar="OURS.pth", help="where the converted model goes")


def main(argv: Sequence[str] | None = None) -> str:
    """Convert and write; returns the output path."""
    args = launch.parse_args("Convert an SGB checkpoint into this project's detector format", argv, extra_arguments)
    # the weights do not depend on the box convention (the log does); a relation model brings its own detector
    args.opts = [*args.opts, "MODEL.BOX_CONVENTION", "sgb", "MODEL.PRETRAINED_DETECTOR_CKPT", ""]
    cfg = launch.load_tool_config(args)
    logger = setup_logger(launch.LOGGER_NAME, "", 0)
    with user_errors(f"reading --input {args.input}"):
        if not is_sgb_state(model_state_of(read_checkpoint(args.input, mmap=True))):
            raise UserInputError(f"--input {args.input} is not an SGB checkpoint (no SGB key names such as "
                                 "backbone.body.stem.* or roi_heads.box.*)")
        model = build_model(cfg) if cfg.MODEL.RELATION_ON else build_detector(cfg)
        load_model_weights(model, args.input, key="--input")
    with user_errors(f"writing --output {args.output}"):
        with atomic_write(args.output) as stream:
            torch.save({"model": model.state_dict(), BOX_CONVENTION_ENTRY: "sgb"}, stream)
    logger.info("Wrote %s (%d tensors); it loads as %s and selects MODEL.BOX_CONVENTION sgb", args.output,
                len(model.state_dict()), "MODEL.WEIGHT or MODEL.PRETRAINED_MODEL_CKPT" if cfg.MODEL.RELATION_ON
                else "MODEL.PRETRAINED_DETECTOR_CKPT or MODEL.WEIGHT")
    return args.output


if __name__ == "__main__":
    logging.captureWarnings(True)
    run_tool(main)

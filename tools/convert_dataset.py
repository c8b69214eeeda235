"""Write a dataset of any registered family (VG150, Open Images V6, GQA-200, scene-graph JSON) in the
scene-graph JSON format (docs/data.md#scene-graph-json).

    python tools/convert_dataset.py --config-file CONFIG --output FOLDER [--images link|copy|none] [KEY VALUE ...]

Converts the datasets named by DATASETS.TRAIN, DATASETS.VAL and DATASETS.TEST of the config (with its
DATASETS.DATA_DIR, DATASETS.NUM_VAL_IM, MODEL.RELATION_ON, ...) into FOLDER/{vocabulary.json, train.json,
val.json, test.json, images/}: each split exactly as its family's loader yields it for evaluation (its split
selection and filters applied, every relation row kept, boxes clamped in the original pixel frame; VG150's
1024-frame boxes rescaled as its loader rescales them), so ``json:FOLDER:<split>`` loads the same samples.
images/ holds symlinks to the source images (``--images copy``: copies; ``none``: nothing). FOLDER must not
exist; on any error nothing is written. Exit code 2 with one ``error:`` line on bad input.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rebalance_hca.config import load_config
from rebalance_hca.data.build import MODES, dataset_name
from rebalance_hca.data.family import SplitOptions
from rebalance_hca.data.registry import dataset_paths, family_of
from rebalance_hca.data.scene_graph_json.writer import IMAGE_MODES, write_json_dataset
from rebalance_hca.utils.cli import run_tool, user_errors


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="yaml config naming the datasets")
    parser.add_argument("--output", required=True, metavar="FOLDER", help="the JSON dataset folder to write")
    parser.add_argument("--images", choices=IMAGE_MODES, default="link", help="how images/ gets the images")
    parser.add_argument("opts", nargs="*", default=[], help="config overrides as KEY VALUE pairs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    args = parse_args(argv)
    with user_errors("reading the config"):
        cfg = load_config(args.config_file or None, args.opts)
    options = SplitOptions(filter_empty_rels=cfg.MODEL.RELATION_ON, filter_duplicate_rels=False, rebalance=None,
                           transforms=None, resampling=None)
    with user_errors("converting the dataset"):
        splits = {}
        for mode in MODES:
            name = dataset_name(cfg, mode)
            splits[mode] = family_of(name).build_dataset(cfg, dataset_paths(name, cfg.DATASETS.DATA_DIR), options)
        write_json_dataset(args.output, splits, args.images)
    print(f"wrote {args.output}: " + ", ".join(f"{split} {len(ds)} images" for split, ds in splits.items()))
    return args.output


if __name__ == "__main__":
    run_tool(lambda: main(sys.argv[1:]))

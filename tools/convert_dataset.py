"""Write a dataset of any registered family (VG150, Open Images V6, GQA-200, scene-graph JSON) in any family's
layout (docs/data.md#converting-between-families).

    python tools/convert_dataset.py --config-file CONFIG --output FOLDER [--to json|vg150|oiv6|gqa200]
        [--images link|copy|none] [KEY VALUE ...]

Converts the datasets named by DATASETS.TRAIN, DATASETS.VAL and DATASETS.TEST of the config (with its
DATASETS.DATA_DIR, DATASETS.NUM_VAL_IM, MODEL.RELATION_ON, ...), each split exactly as its family's loader yields
it for evaluation (its split selection and filters applied, every relation row kept):
  --to json (default): FOLDER/{vocabulary.json, train.json, val.json, test.json, images/}, boxes clamped in the
      original pixel frame (VG150's 1024-frame boxes rescaled as its loader rescales them);
  --to vg150: FOLDER/vg/ (h5, dicts, image_data.json, VG_100K/), val first in the train pool;
  --to oiv6: FOLDER/openimages/open_image_v6/ (PySGG's annotations/ and images/);
  --to gqa200: FOLDER/gqa/ (SHA-GCL's GQA_200_*.json and images/), val at the start of the test file.
It prints the config overrides that load the written dataset with the same samples (DATASETS.DATA_DIR, the
dataset names, DATASETS.NUM_VAL_IM) and what the layout could not hold as the source had it (VG150's rounded
boxes, renamed images, ...). Images are symlinked (--images copy: copied; none: not placed). FOLDER must not
exist; on any error nothing is written. Exit code 2 with one ``error:`` line on bad input.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rebalance_hca.config import load_config
from rebalance_hca.data.build import MODES, dataset_name
from rebalance_hca.data.family import SplitOptions
from rebalance_hca.data.registry import dataset_paths, family_keys, family_of, family_with_key
from rebalance_hca.data.writing import IMAGE_MODES, WrittenDataset
from rebalance_hca.utils.cli import run_tool, user_errors


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="yaml config naming the datasets")
    parser.add_argument("--output", required=True, metavar="FOLDER",
                        help="the folder to write: the JSON dataset folder (--to json), else the data root that "
                             "will hold the layout")
    parser.add_argument("--to", choices=family_keys(), default="json", help="the layout to write (default json)")
    parser.add_argument("--images", choices=IMAGE_MODES, default="link", help="how the images get there")
    parser.add_argument("opts", nargs="*", default=[], help="config overrides as KEY VALUE pairs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> WrittenDataset:
    args = parse_args(argv)
    with user_errors("reading the config"):
        cfg = load_config(args.config_file or None, args.opts)
    options = SplitOptions(filter_empty_rels=cfg.MODEL.RELATION_ON, filter_duplicate_rels=False, rebalance=None,
                           transforms=None, resampling=None)
    target = family_with_key(args.to)
    with user_errors(f"converting the dataset to {target.name}"):
        splits = {}
        for mode in MODES:
            name = dataset_name(cfg, mode)
            splits[mode] = family_of(name).build_dataset(cfg, dataset_paths(name, cfg.DATASETS.DATA_DIR), options)
        written = target.write_dataset(args.output, splits, args.images)
    print(f"wrote {args.output} ({target.name}): "
          + ", ".join(f"{split} {len(ds)} images" for split, ds in splits.items()))
    print("load it with the overrides: " + " ".join(_quoted(token) for token in written.overrides)
          + f" MODEL.RELATION_ON {cfg.MODEL.RELATION_ON}")
    for note in written.notes:
        print(f"note: {note}")
    return written


def _quoted(token: str) -> str:
    return f'"{token}"' if any(character in token for character in " ()',") else token


if __name__ == "__main__":
    run_tool(lambda: main(sys.argv[1:]))

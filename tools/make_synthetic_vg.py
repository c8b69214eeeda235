"""Generate SynthVG, the project's synthetic dataset in VG150's file formats, Open Images V6's (PySGG) or
GQA-200's (SHA-GCL).

    python tools/make_synthetic_vg.py --output-dir datasets/synthvg [--num-images 4000] [--seed 0]
        [--image-size 192] [--test-fraction 0.3] [--annotations-only] [--workers N] [--overwrite]
        [--format vg150|oiv6|gqa200] [--num-val-images 100]
    python tools/make_synthetic_vg.py --output-dir datasets/vg_scale --vg-scale --annotations-only
    python tools/make_synthetic_vg.py --output-dir datasets/oi_scale --format oiv6 --oi-scale --annotations-only
    python tools/make_synthetic_vg.py --output-dir datasets/gqa_scale --format gqa200 --gqa-scale --annotations-only

--format vg150 (default) writes <output-dir>/vg/{VG_100K/, VG-SGG-with-attri.h5, VG-SGG-dicts-with-attri.json,
image_data.json, glove.6B.200d.txt}; point DATASETS.DATA_DIR (and GLOVE_DIR at <output-dir>/vg) there.
--format oiv6 writes the same scenes as <output-dir>/openimages/open_image_v6/{images/, annotations/
vrd-{train,val,test}-anno.json, annotations/categories_dict.json, glove.6B.200d.txt} (val: the first
--num-val-images train-pool images); DATASETS.DATA_DIR = <output-dir>, GLOVE_DIR = that folder.
--format gqa200 writes the same scenes as <output-dir>/gqa/{images/, GQA_200_ID_Info.json, GQA_200_Train.json (the
train pool), GQA_200_Test.json (the test split; val is its first DATASETS.NUM_VAL_IM usable images, as SHA-GCL's
loader takes them), glove.6B.200d.txt}; DATASETS.DATA_DIR = <output-dir>, GLOVE_DIR = that folder.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from rebalance_hca.data.gqa.dataset import ignored_record, select_gqa_split
from rebalance_hca.data.family import SPLITS
from rebalance_hca.data.gqa.files import GQA_FILES, load_gqa_annotations, load_gqa_vocabulary
from rebalance_hca.data.oi.files import (CATEGORIES_FILE_NAME, OI_ANNOTATION_FOLDER, annotation_file_name,
                                         load_oi_annotations, load_oi_vocabulary)
from rebalance_hca.data.synthetic import (
    DEFAULT_IMAGE_SIZE, DEFAULT_NUM_IMAGES, DEFAULT_OI_VAL_IMAGES, DEFAULT_TEST_FRACTION, SynthVGOptions,
    write_gqa_scale, write_oi_scale, write_synthvg, write_synthvg_gqa, write_synthvg_oi, write_vg_scale,
)
from rebalance_hca.data.vg.writer import DICTS_FILE_NAME
from rebalance_hca.utils.cli import run_tool, user_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="datasets/synthvg", help="the dataset goes to <output-dir>/vg")
    parser.add_argument("--num-images", type=int, default=None,
                        help=f"h5 images to generate (default {DEFAULT_NUM_IMAGES}; not with --vg-scale)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                        help="typical longer image side in pixels (varies from 0.83x to 1.33x)")
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    parser.add_argument("--annotations-only", action="store_true", help="write no JPEG images")
    parser.add_argument("--vg-scale", action="store_true",
                        help="VG-sized annotation-only file (108,073 images, ~1.1 M boxes, ~620 k relations)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes that render images")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing SynthVG folder")
    parser.add_argument("--format", choices=("vg150", "oiv6", "gqa200"), default="vg150",
                        help="VG150's files (default), PySGG's Open Images V6 layout or SHA-GCL's GQA-200 layout")
    parser.add_argument("--num-val-images", type=int, default=DEFAULT_OI_VAL_IMAGES,
                        help="--format oiv6: train-pool images written as the val split")
    parser.add_argument("--oi-scale", action="store_true",
                        help="Open Images V6-sized annotation-only files (126,368 / 1,813 / 5,322 images)")
    parser.add_argument("--gqa-scale", action="store_true",
                        help="GQA-200-sized annotation-only files (60,000 train / 11,000 test records)")
    args = parser.parse_args(argv)
    for flag, size, fmt in (("vg_scale", "108,073 images", "vg150"), ("oi_scale", "126,368 train images", "oiv6"),
                            ("gqa_scale", "60,000 train records", "gqa200")):
        if getattr(args, flag) and args.num_images is not None:
            parser.error(f"--{flag.replace('_', '-')} fixes the size ({size}); drop --num-images")
        if getattr(args, flag) and not args.annotations_only:
            parser.error(f"--{flag.replace('_', '-')} writes annotations only; add --annotations-only")
        if getattr(args, flag) and args.format != fmt:
            parser.error(f"--{flag.replace('_', '-')} needs --format {fmt}")
    return args


def predicate_line(predicates: list[str], train_predicates: np.ndarray) -> str:
    """The train predicates, most frequent first, with their counts. train_predicates: (R,) ids."""
    counts = np.bincount(train_predicates, minlength=len(predicates))
    order = np.argsort(-counts[1:], kind="stable") + 1
    return "train predicates, most frequent first: " + ", ".join(f"{predicates[p]} {counts[p]}" for p in order
                                                                 if counts[p])


def oi_summary(folder: str) -> list[str]:
    """Sizes per split and the train predicates, most frequent first, of an Open Images-format folder."""
    annotations = os.path.join(folder, OI_ANNOTATION_FOLDER)
    predicates = load_oi_vocabulary(os.path.join(annotations, CATEGORIES_FILE_NAME)).ind_to_predicates
    lines = []
    for split in SPLITS:
        ann = load_oi_annotations(os.path.join(annotations, annotation_file_name(split)))
        lines.append(f"{split}: {len(ann.image_files)} images, {len(ann.boxes)} boxes, {len(ann.relations)} relations")
        if split == "train":
            train_predicates = ann.relations[:, 2]
    return lines + [predicate_line(predicates, train_predicates)]


def gqa_summary(folder: str) -> list[str]:
    """Records per file, usable images per split as the loader takes them, and the train predicates, most
    frequent first, of a GQA-200-format folder."""
    predicates = load_gqa_vocabulary(os.path.join(folder, GQA_FILES["dict_file"])).ind_to_predicates
    lines = []
    for split, key in (("train", "train_file"), ("test", "test_file")):
        ann = load_gqa_annotations(os.path.join(folder, GQA_FILES[key]), ignored_record(split))
        usable = len(select_gqa_split(ann, split).image_rows)
        lines.append(f"{GQA_FILES[key]}: {len(ann.image_files)} records ({usable} with boxes and relations), "
                     f"{len(ann.boxes)} boxes, {len(ann.relations)} relations")
        if split == "train":
            train_predicates = ann.relations[:, 2]
    return lines + [predicate_line(predicates, train_predicates)]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    with user_errors(f"writing SynthVG to {args.output_dir}"):
        if args.vg_scale:
            folder = write_vg_scale(args.output_dir, args.seed, args.test_fraction, args.overwrite)
        elif args.oi_scale:
            folder = write_oi_scale(args.output_dir, args.seed, args.overwrite)
        elif args.gqa_scale:
            folder = write_gqa_scale(args.output_dir, args.seed, args.overwrite)
        else:
            options = SynthVGOptions(num_images=args.num_images or DEFAULT_NUM_IMAGES, seed=args.seed,
                                     image_size=args.image_size, test_fraction=args.test_fraction)
            if args.format == "gqa200":
                folder = write_synthvg_gqa(args.output_dir, options, annotations_only=args.annotations_only,
                                           overwrite=args.overwrite, workers=args.workers)
            elif args.format == "oiv6":
                folder = write_synthvg_oi(args.output_dir, options, args.num_val_images,
                                          annotations_only=args.annotations_only, overwrite=args.overwrite,
                                          workers=args.workers)
            else:
                folder = write_synthvg(args.output_dir, options, annotations_only=args.annotations_only,
                                       overwrite=args.overwrite, workers=args.workers)
    if args.format in ("oiv6", "gqa200"):
        print(f"wrote {folder} in {time.perf_counter() - start:.1f} s")
        print("\n".join((oi_summary if args.format == "oiv6" else gqa_summary)(folder)))
        return
    with open(os.path.join(folder, DICTS_FILE_NAME), encoding="utf-8") as handle:
        counts = json.load(handle)
    predicate_counts = sorted(counts["predicate_count"].items(), key=lambda item: -item[1])
    print(f"wrote {folder} in {time.perf_counter() - start:.1f} s: "
          f"{sum(counts['object_count'].values())} boxes, {sum(c for _, c in predicate_counts)} relations")
    print("predicates, most frequent first: " + ", ".join(f"{name} {count}" for name, count in predicate_counts))


if __name__ == "__main__":
    run_tool(main)

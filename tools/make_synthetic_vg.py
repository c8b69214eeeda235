"""Generate SynthVG, the project's synthetic dataset in VG150's file formats.

    python tools/make_synthetic_vg.py --output-dir datasets/synthvg [--num-images 4000] [--seed 0]
        [--image-size 192] [--test-fraction 0.3] [--annotations-only] [--workers N] [--overwrite]
    python tools/make_synthetic_vg.py --output-dir datasets/vg_scale --vg-scale --annotations-only

writes <output-dir>/vg/{VG_100K/, VG-SGG-with-attri.h5, VG-SGG-dicts-with-attri.json, image_data.json,
glove.6B.200d.txt}; point DATASETS.DATA_DIR (and GLOVE_DIR at <output-dir>/vg) there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


from rebalance_hca.data.synthetic import (
    DEFAULT_IMAGE_SIZE, DEFAULT_NUM_IMAGES, DEFAULT_TEST_FRACTION, SynthVGOptions, write_synthvg, write_vg_scale,
)
from rebalance_hca.data.synthvg.writers import DICTS_FILE_NAME


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
    args = parser.parse_args(argv)
    if args.vg_scale and args.num_images is not None:
        parser.error("--vg-scale fixes the size (108,073 images); drop --num-images")
    if args.vg_scale and not args.annotations_only:
        parser.error("--vg-scale writes annotations only; add --annotations-only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        if args.vg_scale:
            folder = write_vg_scale(args.output_dir, args.seed, args.test_fraction, args.overwrite)
        else:
            options = SynthVGOptions(num_images=args.num_images or DEFAULT_NUM_IMAGES, seed=args.seed,
                                     image_size=args.image_size, test_fraction=args.test_fraction)
            folder = write_synthvg(args.output_dir, options, annotations_only=args.annotations_only,
                                   overwrite=args.overwrite, workers=args.workers)
    except (FileExistsError, ValueError) as error:
        print(f"make_synthetic_vg: error: {error}", file=sys.stderr)
        return 2
    with open(os.path.join(folder, DICTS_FILE_NAME), encoding="utf-8") as handle:
        counts = json.load(handle)
    predicate_counts = sorted(counts["predicate_count"].items(), key=lambda item: -item[1])
    print(f"wrote {folder} in {time.perf_counter() - start:.1f} s: "
          f"{sum(counts['object_count'].values())} boxes, {sum(c for _, c in predicate_counts)} relations")
    print("predicates, most frequent first: " + ", ".join(f"{name} {count}" for name, count in predicate_counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

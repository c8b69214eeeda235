"""How far SGB's TDE moving averages are from the features they stand for after a short training, and a copy of
the checkpoint with them bias-corrected (a diagnostic on this machine, not a test; README "The comparison
table").

    .venv/bin/python benchmarks/check_tde_averages.py --weight RUN/model_final.pth --output CORRECTED.pth

SGB's causal predictor keeps its "untreated" features as moving averages m <- m (1 - r) + r · (batch mean),
r = 0.0005, starting at zero and without bias correction. After T training iterations such an average is
(1 - (1 - r)^T) times the (recency-weighted) mean of the batch means: 14% after the 300 iterations of the
SynthVG table, 99.99% after SGB's 50,000 on VG150. This script reads T from the checkpoint, prints that
fraction and each average's size, and writes a copy in which every average is divided by the fraction (the
bias correction Adam applies to its moments), so that testing the copy with
``MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE TDE`` shows what TDE gives once its counterfactual reads the
features' mean. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import re

import torch

from rebalance_hca.modeling.relation_head.context.counterfactual import AVERAGE_RATIO
from rebalance_hca.utils.atomic import atomic_write

AVERAGE_KEY = re.compile(r"(^|\.)(untreated_\w+|avg_post_ctx)$")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weight", required=True, help="a causal model's checkpoint (its 'model' and 'iteration')")
    parser.add_argument("--output", required=True, help="where to write the bias-corrected copy")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    checkpoint = torch.load(args.weight, map_location="cpu", weights_only=False)
    iterations = int(checkpoint["iteration"])
    fraction = 1.0 - (1.0 - AVERAGE_RATIO) ** iterations
    model = checkpoint["model"]
    averages = sorted(key for key in model if AVERAGE_KEY.search(key))
    if not averages:
        raise SystemExit(f"error: {args.weight} holds no TDE moving averages (untreated_* / avg_post_ctx)")
    sizes = {}
    for key in averages:
        sizes[key] = float(model[key].norm())
        model[key] = model[key] / fraction
        print(f"{key}: norm {sizes[key]:.4f} -> {float(model[key].norm()):.4f}")
    with atomic_write(args.output) as stream:
        torch.save(checkpoint, stream)
    print(f"{iterations} iterations at rate {AVERAGE_RATIO}: each average holds {fraction:.4f} of its mean; "
          f"corrected copy in {args.output}")
    print(json.dumps({"iterations": iterations, "average_fraction": fraction, "averages": sizes,
                      "output": args.output}))


if __name__ == "__main__":
    main()

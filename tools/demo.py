"""Scene graphs for your own images: SGDet on a folder of images, an image list or a video.

    python tools/demo.py --config-file CONFIG --input FOLDER|LIST.txt|VIDEO.mp4|IMAGE \
        MODEL.WEIGHT RUN/model_final.pth OUTPUT_DIR OUT [KEY VALUE ...]

CONFIG is the trained model's config (its saved RUN/config.yml will do) in SGDet mode
(MODEL.ROI_RELATION_HEAD.USE_GT_BOX False, USE_GT_OBJECT_LABEL False); MODEL.WEIGHT the SGDet-trained weights.
Images of any size are resized as the config's test transform says (INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST);
boxes come back in the original frame. For each image OUTPUT_DIR gets <name>.json (the scene graph, schema
in docs/demo.md) and <name>.png (boxes, the top relations as arrows, the scene graph beside the image).
A file that is not a usable image is skipped with a warning naming it. A missing checkpoint or one that does
not fit the config is an error before any image is read.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from tqdm import tqdm

from rebalance_hca.data.transforms import build_transforms
from rebalance_hca.engine import launch
from rebalance_hca.engine.image_inference import MIN_IMAGE_SIDE, ImageSource, batches, predict_scene_graphs
from rebalance_hca.engine.relation_runs import check_relation_config, load_weights_for_testing
from rebalance_hca.engine.trainer import amp_dtype_from_config
from rebalance_hca.modeling import build_model, model_vocabulary, relation_mode
from rebalance_hca.utils.cli import UserInputError, run_tool, user_errors
from rebalance_hca.visualization.drawing import draw_scene_graph
from rebalance_hca.visualization.scene_graph_json import SelectionOptions, scene_graph_document, write_scene_graph


def extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="a folder of images, an image list (.txt/.lst, one path a line), a video or one image")
    parser.add_argument("--every-n-frames", type=int, default=30, metavar="N", help="video: one frame in N (30)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="B", help="images per forward pass (4)")
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"), help="sets MODEL.DEVICE")
    parser.add_argument("--max-triplets", type=int, default=10, metavar="N",
                        help="the top N triplets kept per image (10)")
    parser.add_argument("--score-threshold", type=float, default=0.0, metavar="S",
                        help="least triplet score kept, in [0, 1] (0)")
    parser.add_argument("--object-threshold", type=float, default=0.3, metavar="S",
                        help="least detector score of an object listed without a kept triplet (0.3)")
    parser.add_argument("--min-side", type=int, default=MIN_IMAGE_SIDE, metavar="PIXELS",
                        help=f"images smaller than this on a side are skipped ({MIN_IMAGE_SIDE})")
    parser.add_argument("--draw-size", type=int, default=640, metavar="PIXELS",
                        help="longer side of the drawn image in the PNG (640); 0 writes no PNG")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = launch.parse_args("Scene graphs (SGDet) for your own images", argv, extra_arguments)
    if args.device:
        args.opts = [*args.opts, "MODEL.DEVICE", args.device]
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the demo; returns {"written": [output stems], "skipped": [(source, reason)]}."""
    args = parse_args(argv)
    cfg = launch.load_tool_config(args)
    check_relation_config(cfg)
    if relation_mode(cfg) != "sgdet":
        raise UserInputError("tools/demo.py runs SGDet: set MODEL.ROI_RELATION_HEAD.USE_GT_BOX False and "
                             "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL False, with weights trained in SGDet")
    if args.batch_size < 1 or args.draw_size < 0:
        raise UserInputError("--batch-size must be >= 1 and --draw-size >= 0")
    with user_errors("reading the options"):
        options = SelectionOptions(args.max_triplets, args.score_threshold, args.object_threshold)
    source = ImageSource(args.input, args.every_n_frames, args.min_side)
    with launch.session(cfg) as (device, _, logger):
        with user_errors("loading the model"):
            model = build_model(cfg)
            weights = load_weights_for_testing(cfg, model)
            vocabulary = model_vocabulary(cfg)
        model.to(device)
        transform = build_transforms(cfg, is_train=False)
        written = []
        progress = tqdm(total=None if source.is_video else len(source.files), desc="scene graphs", unit="image",
                        dynamic_ncols=True)
        for batch in batches(iter(source), args.batch_size):
            predictions = predict_scene_graphs(model, [item.image for item in batch], transform,
                                               cfg.DATALOADER.SIZE_DIVISIBILITY, device,
                                               amp_dtype_from_config(cfg.DTYPE), cfg.TEST.BATCH_INVARIANT)
            for item, prediction in zip(batch, predictions):
                height, width = item.image.shape[:2]
                document = scene_graph_document(prediction, item.source, width, height, vocabulary.ind_to_classes,
                                                vocabulary.ind_to_predicates, weights, options)
                stem = os.path.join(cfg.OUTPUT_DIR, item.name)
                write_scene_graph(f"{stem}.json", document)
                if args.draw_size:
                    draw_scene_graph(f"{stem}.png", item.image, document, args.draw_size)
                written.append(item.name)
            progress.update(len(written) + len(source.skipped) - progress.n)
        progress.update(len(written) + len(source.skipped) - progress.n)
        progress.close()
        skipped = "; ".join(f"{path} ({reason})" for path, reason in source.skipped) or "none"
        if not written:
            raise UserInputError(f"no usable image in {args.input} (skipped: {skipped})")
        logger.info("Wrote the scene graphs of %d image(s) to %s; skipped %d: %s", len(written), cfg.OUTPUT_DIR,
                    len(source.skipped), skipped)
    return {"written": written, "skipped": source.skipped}


if __name__ == "__main__":
    run_tool(main)

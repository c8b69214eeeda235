"""Shared helpers of the SGB-baseline predictor tests: random objects of a few images as ContextInputs."""
from __future__ import annotations

import os

import numpy as np
import torch

from relation_testing import TINY_MODEL_OPTS, mode_opts
from tool_loading import load_tool
from rebalance_hca.data import make_data_loader
from rebalance_hca.modeling.relation_head.box_geometry import encode_box_info
from rebalance_hca.modeling.relation_head.context import ContextInputs

NUM_CLASSES, EMBED_DIM, ROI_DIM, HIDDEN_DIM = 9, 6, 20, 8


def random_images(counts: list[int], seed: int = 0, sizes: list[tuple[int, int]] | None = None) -> list[dict]:
    """Per image: boxes (n, 4) inside its size, GT labels, detector logits, roi features, per-class boxes."""
    generator = torch.Generator().manual_seed(seed)
    sizes = sizes or [(300 + 20 * index, 400 - 30 * index) for index in range(len(counts))]
    images = []
    for count, (height, width) in zip(counts, sizes):
        corner = torch.rand(count, 2, generator=generator) * torch.tensor([width * 0.6, height * 0.6])
        boxes = torch.cat([corner, corner + 10 + torch.rand(count, 2, generator=generator) * 80], dim=1)
        per_class = boxes[:, None, :] + torch.randn(count, NUM_CLASSES, 4, generator=generator)
        images.append(dict(boxes=boxes, size=(height, width), labels=torch.randint(1, NUM_CLASSES, (count,),
                                                                                   generator=generator),
                           logits=torch.randn(count, NUM_CLASSES, generator=generator) * 2,
                           roi=torch.randn(count, ROI_DIM, generator=generator), per_class=per_class))
    return images


def context_inputs(images: list[dict], mode: str, training: bool = False) -> ContextInputs:
    """The ContextInputs the relation head would give for ``images`` in ``mode``."""
    def cat(name):
        return torch.cat([image[name] for image in images])

    return ContextInputs(
        roi_features=cat("roi"), box_info=torch.cat([encode_box_info(i["boxes"], i["size"]) for i in images]),
        num_objects=[len(image["boxes"]) for image in images], labels=cat("labels") if mode == "predcls" else None,
        detector_logits=None if mode == "predcls" else cat("logits"),
        boxes_per_cls=cat("per_class") if mode == "sgdet" else None, boxes=cat("boxes"),
        image_sizes=[image["size"] for image in images],
        target_labels=cat("labels") if training and mode != "predcls" else None)


def all_pairs(counts: list[int]) -> torch.Tensor:
    """(ΣN_b(N_b − 1), 2) every ordered pair of each image, as flat indices."""
    pairs, offset = [], 0
    for count in counts:
        grid = torch.cartesian_prod(torch.arange(count), torch.arange(count))
        pairs.append(grid[grid[:, 0] != grid[:, 1]] + offset)
        offset += count
    return torch.cat(pairs)


def first_batch(cfg, split: str = "train"):
    """(images, targets) of the first batch of ``split`` under ``cfg``."""
    images, targets, _ = next(iter(make_data_loader(cfg, split)))
    return images, targets


def train_step_then_test(model, cfg) -> dict:
    """One training forward and backward of ``model`` on the first training batch, checking that every
    relation-head parameter gets a gradient, then its predictions on the first test batch, checking that
    every ordered pair of each image is ranked by triplet score with foreground labels. Returns the losses."""
    losses = model.train()(*first_batch(cfg))
    sum(losses.values()).backward()
    head_parameters = [(name, p) for name, p in model.named_parameters() if name.startswith("relation_head.")]
    assert [name for name, p in head_parameters if p.grad is None] == []
    model.eval()
    with torch.no_grad():
        predictions = model(*first_batch(cfg, "test"))
    for prediction in predictions:
        count = len(prediction["boxes"])
        assert prediction["rel_pair_idxs"].shape == (max(count * (count - 1), 1 if count else 0), 2)
        assert torch.all(prediction["triplet_scores"][:-1] >= prediction["triplet_scores"][1:])
        assert bool((prediction["labels"] >= 1).all())
    return losses


def recipe_args(config_file: str, data_dir: str, output_dir: str, *overrides: str) -> list[str]:
    """Command-line arguments of a 4-iteration tiny PredCls run of ``config_file`` on the SynthVG at ``data_dir``."""
    return ["--config-file", config_file, *TINY_MODEL_OPTS, *mode_opts("predcls"),
            "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir,
            "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "4", "SOLVER.TO_VAL", "False",
            "SOLVER.WARMUP_ITERS", "2", "TEST.IMS_PER_BATCH", "2", *overrides]


def run_recipe_through_entry_points(config_file: str, data_dir: str, work_dir: str) -> tuple[set[str], dict]:
    """Stage 1 (tools/relation_train_net.py), the confusion matrix (tools/compute_confusion_matrix.py), stage 2
    with the clean and transfer classifiers, and its test (tools/relation_test_net.py), tiny runs of
    ``config_file``. Returns (the model keys stage 2 changed or added, stage 2's evaluation)."""
    train, test, confusion = (load_tool(name) for name in
                              ("relation_train_net", "relation_test_net", "compute_confusion_matrix"))
    stage1 = os.path.join(work_dir, "stage1")
    train.main(recipe_args(config_file, data_dir, stage1, "--skip-test"))
    confusion_path = confusion.main(recipe_args(config_file, data_dir, stage1))
    assert np.load(confusion_path).sum() > 0
    stage2 = os.path.join(work_dir, "stage2")
    stage2_opts = ["MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True",
                   "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True",
                   "MODEL.PRETRAINED_MODEL_CKPT", os.path.join(stage1, "model_final.pth"),
                   "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX", confusion_path]
    train.main(recipe_args(config_file, data_dir, stage2, *stage2_opts, "--skip-test"))
    load = lambda path: torch.load(path, map_location="cpu", weights_only=True)["model"]  # noqa: E731
    before, after = load(os.path.join(stage1, "model_final.pth")), load(os.path.join(stage2, "model_final.pth"))
    changed = {name for name, value in after.items() if name not in before or not torch.equal(value, before[name])}
    return changed, test.main(recipe_args(config_file, data_dir, stage2, *stage2_opts))

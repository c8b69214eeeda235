"""Shared helpers of the SGB-baseline predictor tests: random objects of a few images as ContextInputs."""
from __future__ import annotations

import re

import torch

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


SGB_VCTREE_NAMES = [
    (r"^context\.(obj|edge)_ctx_rnn\.layers\.(\d+)\.up\.", r"context_layer.\1_ctx_rnn.multi_layer_lstm.\2.treeLSTM_foreward.treeLSTM."),
    (r"^context\.(obj|edge)_ctx_rnn\.layers\.(\d+)\.down\.", r"context_layer.\1_ctx_rnn.multi_layer_lstm.\2.treeLSTM_backward.treeLSTM."),
    (r"^context\.decoder_rnn\.cell\.", "context_layer.decoder_rnn.decoderLSTM."),
    (r"^context\.", "context_layer."),
    (r"^general_classifier\.", ""),
]
"""SGB's names of a predictor on our VCTree context, written here from SGB's modules independently of the
import's table."""


def sgb_vctree_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (a predictor's on the VCTree context) under SGB's names (``SGB_VCTREE_NAMES``), cloned."""
    renamed = {}
    for name, value in state.items():
        for pattern, replacement in SGB_VCTREE_NAMES:
            if re.match(pattern, name):
                name = re.sub(pattern, replacement, name, count=1)
                break
        renamed[name] = value.clone()
    return renamed


def add_sgb_vctree_decoder_aliases(state: dict[str, torch.Tensor]) -> None:
    """Add to an SGB-named ``state`` the second registrations of its VCTree decoder's label table and output
    layer that SGB's state dicts carry."""
    decoder = "context_layer.decoder_rnn."
    state[f"{decoder}decoderLSTM.embed_layer.weight"] = state[f"{decoder}obj_embed.weight"]
    state[f"{decoder}decoderLSTM.embed_out_layer.weight"] = state[f"{decoder}out.weight"]
    state[f"{decoder}decoderLSTM.embed_out_layer.bias"] = state[f"{decoder}out.bias"]

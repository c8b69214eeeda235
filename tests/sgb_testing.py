"""SGB-format checkpoints built from a tiny detector, for the import tests (docs/reference.md#sgb-checkpoints).

The key names are written here from the spec's table, independently of rebalance_hca's mapping.
"""
from __future__ import annotations

import re

import torch
from torch import nn

# SGB's cell anchors of the VG config (ANCHOR_SIZES 32..512, strides 4..64, neural-motifs ratios), copied
# from docs/reference.md#sgb-cell-anchors: inclusive (x1, y1, x2, y2) per level P2..P6, in ASPECT_RATIOS order.
SGB_VG_CELL_ANCHORS = [
    [(-30, -6, 33, 9), (-18, -10, 21, 13), (-14, -18, 17, 21), (-6, -22, 9, 25)],
    [(-64, -12, 71, 19), (-36, -20, 43, 27), (-24, -32, 31, 39), (-16, -60, 23, 67)],
    [(-124, -24, 139, 39), (-72, -44, 87, 59), (-48, -64, 63, 79), (-28, -104, 43, 119)],
    [(-248, -44, 279, 75), (-144, -84, 175, 115), (-96, -128, 127, 159), (-56, -212, 87, 243)],
    [(-500, -92, 563, 155), (-288, -172, 351, 235), (-192, -256, 255, 319), (-112, -420, 175, 483)],
]

_RENAMES = [
    (r"^backbone\.body\.(conv1|bn1)\.", lambda m: f"backbone.body.stem.{m[1]}."),
    (r"^backbone\.fpn\.inner_blocks\.(\d)\.0\.", lambda m: f"backbone.fpn.fpn_inner{int(m[1]) + 1}."),
    (r"^backbone\.fpn\.layer_blocks\.(\d)\.0\.", lambda m: f"backbone.fpn.fpn_layer{int(m[1]) + 1}."),
    (r"^roi_heads\.box_head\.", lambda m: "roi_heads.box.feature_extractor."),
    (r"^roi_heads\.box_predictor\.", lambda m: "roi_heads.box.predictor."),
    (r"^roi_heads\.mask_head\.(\d)\.0\.", lambda m: f"roi_heads.mask.feature_extractor.mask_fcn{int(m[1]) + 1}."),
    (r"^roi_heads\.mask_predictor\.", lambda m: "roi_heads.mask.predictor."),
]

# A few keys of an SGB relation model's head (MotifPredictor-like), which an import must ignore.
RELATION_KEYS = {
    "roi_heads.relation.box_feature_extractor.fc6.weight": (8, 16),
    "roi_heads.relation.union_feature_extractor.feature_extractor.fc7.bias": (8,),
    "roi_heads.relation.union_feature_extractor.rect_conv.2.running_var": (4,),
    "roi_heads.relation.predictor.freq_bias.obj_baseline.weight": (36, 5),
}


def sgb_name(name: str) -> str:
    """SGB's key for one of our detector keys (docs/reference.md#sgb-key-mapping)."""
    for pattern, replacement in _RENAMES:
        match = re.match(pattern, name)
        if match:
            return replacement(match) + name[match.end():]
    return name


def sgb_detector_state(detector: nn.Module, seed: int = 0, half_buffers: bool = False, module_prefix: bool = False,
                       cell_anchors=SGB_VG_CELL_ANCHORS) -> dict[str, torch.Tensor]:
    """The "model" entry SGB would save for ``detector``'s weights: SGB names, random FrozenBatchNorm
    statistics (variances in [0.5, 2]), float16 norm buffers if ``half_buffers`` (apex O1), the cell
    anchors (per level, (A, 4) inclusive xyxy; default the VG config's), and ``module.`` on every key if
    ``module_prefix`` (a multi-GPU run)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in detector.state_dict().items():
        value = tensor.clone()
        if name.endswith("running_var"):
            value = 0.5 + 1.5 * torch.rand(tensor.shape, generator=generator)
        elif name.endswith("running_mean"):
            value = 0.1 * torch.randn(tensor.shape, generator=generator)
        if half_buffers and name.startswith("backbone.body.") and ("bn" in name or "downsample.1" in name):
            value = value.half()
        state[sgb_name(name)] = value
    for level, anchors in enumerate(cell_anchors):
        state[f"rpn.anchor_generator.cell_anchors.{level}"] = torch.as_tensor(anchors, dtype=torch.float32)
    if module_prefix:
        state = {f"module.{name}": tensor for name, tensor in state.items()}
    return state


def with_relation_head(state: dict[str, torch.Tensor], seed: int = 1) -> dict[str, torch.Tensor]:
    """``state`` plus an SGB relation head's keys (same prefix as the rest), as a relation model saves it."""
    generator = torch.Generator().manual_seed(seed)
    prefix = "module." if all(name.startswith("module.") for name in state) else ""
    return {**state, **{f"{prefix}{name}": torch.randn(shape, generator=generator)
                        for name, shape in RELATION_KEYS.items()}}


def write_sgb_checkpoint(path: str, model_state: dict[str, torch.Tensor], legacy: bool = False) -> str:
    """Write ``model_state`` as SGB's Checkpointer does: model, optimizer (one group per parameter),
    iteration and, for a detector (no roi_heads.relation keys), the scheduler; ``legacy``: torch < 1.6's
    non-zip serialisation."""
    first = next(iter(model_state.values()))
    data = {
        "model": model_state,
        "optimizer": {"state": {0: {"momentum_buffer": torch.zeros_like(first, dtype=torch.float32)}},
                      "param_groups": [{"lr": 0.008, "momentum": 0.9, "weight_decay": 0.0001, "params": [0]}]},
        "iteration": 50000,
    }
    if not any("roi_heads.relation." in name for name in model_state):
        data["scheduler"] = {"milestones": [30000, 45000], "gamma": 0.1, "last_epoch": 50000, "base_lrs": [0.008]}
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)
    return path


# An SGB relation model's head, from our model's weights: the feature extractors' names written from the
# spec's table (docs/checkpoints.md), the predictor's by each test (SGB predictor key for one of ours).
_RELATION_FEATURE_NAMES = [
    ("relation_head.box_features.box_head.", "roi_heads.relation.box_feature_extractor."),
    ("relation_head.union_features.reduce_channel.",
     "roi_heads.relation.union_feature_extractor.feature_extractor.pooler.reduce_channel."),
    ("relation_head.union_features.box_head.", "roi_heads.relation.union_feature_extractor.feature_extractor."),
    ("relation_head.union_features.rect_conv.", "roi_heads.relation.union_feature_extractor.rect_conv."),
]


def sgb_relation_state(model: nn.Module, predictor_state: dict[str, torch.Tensor], seed: int = 0
                       ) -> dict[str, torch.Tensor]:
    """The "model" entry SGB would save for the scene-graph ``model``'s weights: its detector as
    ``sgb_detector_state`` writes it (with the config's anchors), its feature extractors under SGB's names
    and ``predictor_state`` (SGB's predictor keys, relative to ``roi_heads.relation.predictor.``)."""
    detector = model.detector
    state = sgb_detector_state(detector, seed=seed, cell_anchors=detector.rpn.anchor_generator.inclusive_cell_anchors())
    for name, tensor in model.state_dict().items():
        for ours, sgb in _RELATION_FEATURE_NAMES:
            if name.startswith(ours):
                state[sgb + name[len(ours):]] = tensor.clone()
    state.update({f"roi_heads.relation.predictor.{name}": tensor for name, tensor in predictor_state.items()})
    return state


def sgb_attention_cell(state: dict[str, torch.Tensor], our_cell: str, sgb_cell: str) -> dict[str, torch.Tensor]:
    """SGB's Single_Att_Layer / EncoderLayer entries (``slf_attn.w_qs`` ..., ``pos_ffn.w_1`` as a 1x1 Conv1d)
    for our AttentionCell at ``our_cell`` in ``state``."""
    sgb = {}
    for kind in ("weight", "bias"):
        if f"{our_cell}attention.qkv.{kind}" in state:
            query, key, value = state[f"{our_cell}attention.qkv.{kind}"].chunk(3)
        else:
            query = state[f"{our_cell}attention.q.{kind}"]
            key, value = state[f"{our_cell}attention.kv.{kind}"].chunk(2)
        sgb.update({f"{sgb_cell}slf_attn.w_qs.{kind}": query, f"{sgb_cell}slf_attn.w_ks.{kind}": key,
                    f"{sgb_cell}slf_attn.w_vs.{kind}": value,
                    f"{sgb_cell}slf_attn.fc.{kind}": state[f"{our_cell}attention.out.{kind}"],
                    f"{sgb_cell}slf_attn.layer_norm.{kind}": state[f"{our_cell}attention.norm.{kind}"],
                    f"{sgb_cell}pos_ffn.layer_norm.{kind}": state[f"{our_cell}feed_forward.norm.{kind}"]})
        for ours, theirs in (("w1", "w_1"), ("w2", "w_2")):
            tensor = state[f"{our_cell}feed_forward.{ours}.{kind}"]
            sgb[f"{sgb_cell}pos_ffn.{theirs}.{kind}"] = tensor[..., None] if kind == "weight" else tensor
    return sgb

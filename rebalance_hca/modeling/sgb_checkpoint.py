"""Import of Scene-Graph-Benchmark (SGB) checkpoints: detectors into this project's detector, relation
models whole into its scene-graph model (docs/checkpoints.md).

SGB's ``model_final.pth`` (a detector or a relation model) is recognised by its key names, and its detector
part is mapped onto ``SceneGraphDetector``'s state dict (docs/reference.md#sgb-checkpoints):

* the ``module.`` prefix of multi-GPU runs is removed when every key has it;
* SGB's names become ours (stem, FPN blocks, box head, predictor, Mask R-CNN head); the rest are equal;
* every tensor is cast to float32 (SGB's FrozenBatchNorm buffers may be float16);
* FrozenBatchNorm: SGB's has no epsilon, torchvision's adds 1e-5 to the variance, so the variances are
  stored minus 1e-5, to the float32 ulp: ``var' + 1e-5 == var`` exactly for every variance >= 1e-5 (features
  are SGB's bit for bit), within an ulp of ``var`` below;
* ``rpn.anchor_generator.cell_anchors.*`` are compared with the anchors that the config gives under SGB's
  rule, then dropped; ``roi_heads.relation.*`` (a relation model's head) is ignored by the detector import.

A relation model (``import_sgb_relation_state``) adds the relation head: its feature extractors by
``SGB_RELATION_FEATURE_RENAMES``, and its predictor, recognised by ``SGB_PREDICTOR_SIGNATURES`` and checked
against MODEL.ROI_RELATION_HEAD.PREDICTOR, by the predictor class's ``from_sgb_state``.

Variants this detector cannot be (attribute head, C4 or VGG body, GroupNorm FPN, class-agnostic regression,
another class count, a mask head without MODEL.MASK_ON, other anchors) are refused with the reason; keys or
shapes that still do not fit are listed with SGB's names and the config keys that likely differ.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from ..utils.state_dict import StateDictMismatchError, find_mismatches

logger = logging.getLogger(__name__)

MODULE_PREFIX = "module."
CELL_ANCHORS_PREFIX = "rpn.anchor_generator.cell_anchors."
RELATION_PREFIX = "roi_heads.relation."
FROZEN_BATCH_NORM_EPS = 1e-5
"""torchvision FrozenBatchNorm2d's epsilon, which SGB's FrozenBatchNorm2d does not have."""

# Key prefixes that only SGB's GeneralizedRCNN has (this project's detector and models never do).
_SGB_ONLY_PREFIXES = ("backbone.body.stem.", "backbone.body.conv_body.", "roi_heads.box.", "roi_heads.mask.",
                      "roi_heads.attribute.", RELATION_PREFIX, CELL_ANCHORS_PREFIX)
_ANCHOR_TOLERANCE = 1e-3
_DETECTOR_PROBE_KEY = "rpn.head.conv.weight"

_Rename = tuple[re.Pattern, Callable[[re.Match], str]]
_SGB_TO_OURS: list[_Rename] = [
    (re.compile(r"^backbone\.body\.stem\.(conv1|bn1)\."), lambda m: f"backbone.body.{m[1]}."),
    (re.compile(r"^backbone\.fpn\.fpn_inner(\d+)\."), lambda m: f"backbone.fpn.inner_blocks.{int(m[1]) - 1}.0."),
    (re.compile(r"^backbone\.fpn\.fpn_layer(\d+)\."), lambda m: f"backbone.fpn.layer_blocks.{int(m[1]) - 1}.0."),
    (re.compile(r"^roi_heads\.box\.feature_extractor\."), lambda m: "roi_heads.box_head."),
    (re.compile(r"^roi_heads\.box\.predictor\."), lambda m: "roi_heads.box_predictor."),
    (re.compile(r"^roi_heads\.mask\.feature_extractor\.mask_fcn(\d+)\."),
     lambda m: f"roi_heads.mask_head.{int(m[1]) - 1}.0."),
    (re.compile(r"^roi_heads\.mask\.predictor\."), lambda m: "roi_heads.mask_predictor."),
]
_OURS_TO_SGB: list[_Rename] = [
    (re.compile(r"^backbone\.body\.(conv1|bn1)\."), lambda m: f"backbone.body.stem.{m[1]}."),
    (re.compile(r"^backbone\.fpn\.inner_blocks\.(\d+)\.0\."), lambda m: f"backbone.fpn.fpn_inner{int(m[1]) + 1}."),
    (re.compile(r"^backbone\.fpn\.layer_blocks\.(\d+)\.0\."), lambda m: f"backbone.fpn.fpn_layer{int(m[1]) + 1}."),
    (re.compile(r"^roi_heads\.box_head\."), lambda m: "roi_heads.box.feature_extractor."),
    (re.compile(r"^roi_heads\.box_predictor\."), lambda m: "roi_heads.box.predictor."),
    (re.compile(r"^roi_heads\.mask_head\.(\d+)\.0\."),
     lambda m: f"roi_heads.mask.feature_extractor.mask_fcn{int(m[1]) + 1}."),
    (re.compile(r"^roi_heads\.mask_predictor\."), lambda m: "roi_heads.mask.predictor."),
]

# (our key, dimension, what it measures, the config key(s) that decide it) for the "likely reason" lines.
_ARCHITECTURE_PROBES = [
    ("backbone.body.layer1.0.conv1.weight", 0, "res2 block width", "MODEL.RESNETS.NUM_GROUPS / WIDTH_PER_GROUP"),
    ("backbone.body.layer1.0.conv2.weight", 1, "input channels per group of res2's 3x3 conv",
     "MODEL.RESNETS.NUM_GROUPS / WIDTH_PER_GROUP"),
    ("backbone.fpn.inner_blocks.0.0.weight", 0, "FPN channels", "MODEL.RESNETS.BACKBONE_OUT_CHANNELS"),
    ("rpn.head.conv.weight", 0, "RPN head channels", "MODEL.RPN.RPN_MID_CHANNEL"),
    ("rpn.head.cls_logits.weight", 0, "anchors per location", "MODEL.RPN.ASPECT_RATIOS (one anchor per ratio)"),
    ("roi_heads.box_head.fc6.weight", 0, "box head width", "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM"),
    ("roi_heads.box_head.fc6.weight", 1, "fc6 inputs (FPN channels x resolution^2)",
     "MODEL.RESNETS.BACKBONE_OUT_CHANNELS / MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION"),
]
_STAGE_BLOCK = re.compile(r"^backbone\.body\.layer(\d)\.(\d+)\.")


class SGBCheckpointError(ValueError):
    """An SGB checkpoint that this detector cannot be: the message names the file, the keys and the reason."""


class SGBStateMismatchError(StateDictMismatchError):
    """Keys or shapes of an SGB checkpoint that do not fit the detector, every one listed with SGB's names,
    followed by the config keys that likely differ."""

    def __init__(self, source: str, missing: list[str], unexpected: list[str],
                 shape_mismatches: list[tuple[str, tuple, tuple]], reasons: list[str]) -> None:
        super().__init__(source, missing, unexpected, shape_mismatches, listed_per_kind=None)
        if reasons:
            self.args = (self.args[0] + "\n  likely reason(s):" + "".join(f"\n    {r}" for r in reasons),)


@dataclass(frozen=True)
class SGBImport:
    """An imported SGB checkpoint: ``state`` is the detector's state dict (our names, float32); the rest
    says what happened, for the log."""

    state: dict[str, Tensor]
    relation_model: bool
    prefix_removed: bool
    renamed: int
    half_precision: int
    anchor_levels_checked: int
    ignored_relation_keys: int

    def summary(self) -> str:
        """One sentence for the log."""
        kind = "relation-model" if self.relation_model else "detector"
        parts = [f"an SGB {kind} checkpoint: {len(self.state)} tensors mapped ({self.renamed} renamed"
                 + (", 'module.' prefix removed" if self.prefix_removed else "") + ")",
                 f"FrozenBatchNorm variances adjusted for torchvision's eps {FROZEN_BATCH_NORM_EPS:g}"]
        if self.half_precision:
            parts.append(f"{self.half_precision} float16 tensors cast to float32")
        parts.append(f"{self.anchor_levels_checked} levels of rpn.anchor_generator.cell_anchors checked against "
                     "the config's anchors and not loaded" if self.anchor_levels_checked
                     else "no rpn.anchor_generator.cell_anchors to check")
        if self.relation_model:
            parts.append(f"{self.ignored_relation_keys} {RELATION_PREFIX}* keys ignored (the relation head starts "
                         "from the imported detector's fc6/fc7)")
        return "; ".join(parts)


def _rename(name: str, renames: list[_Rename]) -> str:
    for pattern, replacement in renames:
        match = pattern.match(name)
        if match:
            return replacement(match) + name[match.end():]
    return name


def sgb_to_ours(name: str) -> str:
    """Our key for SGB key ``name`` (after ``module.``), e.g. backbone.fpn.fpn_inner1.weight ->
    backbone.fpn.inner_blocks.0.0.weight; names shared by both come back unchanged."""
    return _rename(name, _SGB_TO_OURS)


def ours_to_sgb(name: str) -> str:
    """Inverse of ``sgb_to_ours``."""
    return _rename(name, _OURS_TO_SGB)


def without_module_prefix(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], bool]:
    """(state without ``module.``, whether it was removed): only when every key has it, as SGB does."""
    if state and all(name.startswith(MODULE_PREFIX) for name in state):
        return {name[len(MODULE_PREFIX):]: tensor for name, tensor in state.items()}, True
    return dict(state), False


def is_sgb_state(state: Mapping[str, object]) -> bool:
    """Whether a checkpoint's model state has SGB's key names (with or without ``module.``)."""
    names = without_module_prefix(state)[0] if all(isinstance(k, str) for k in state) else {}
    return any(name.startswith(_SGB_ONLY_PREFIXES) for name in names)


def _refusals(state: Mapping[str, Tensor], model_state: Mapping[str, Tensor], mask_on: bool) -> list[str]:
    """Reasons why the SGB ``state`` is a variant this detector does not build (empty if none)."""
    reasons = []

    def keys_with(prefix: str) -> list[str]:
        return sorted(name for name in state if name.startswith(prefix))

    def first(keys: list[str]) -> str:
        return keys[0] + (f" (and {len(keys) - 1} more)" if len(keys) > 1 else "")

    if keys_with("roi_heads.attribute."):
        reasons.append(f"{first(keys_with('roi_heads.attribute.'))}: SGB's attribute head (ATTRIBUTE_ON True), whose "
                       "box fc7 is half as wide as fc6; this detector has one MLP_HEAD_DIM")
    if keys_with("backbone.body.conv_body."):
        reasons.append(f"{first(keys_with('backbone.body.conv_body.'))}: a VGG-16 detector; only ResNet/ResNeXt-FPN "
                       "bodies are built here")
    elif not keys_with("backbone.fpn."):
        layer4 = keys_with("roi_heads.box.feature_extractor.head.layer4.")
        reasons.append((f"{first(layer4)}: " if layer4 else "no backbone.fpn.* keys: ")
                       + "a C4 detector (R-50-C4); only FPN detectors are built here")
    if "backbone.fpn.fpn_inner1.0.weight" in state:
        reasons.append("backbone.fpn.fpn_inner1.0.weight: a GroupNorm FPN (MODEL.FPN.USE_GN True), not built here")
    cls_score, bbox_pred = state.get("roi_heads.box.predictor.cls_score.weight"), \
        state.get("roi_heads.box.predictor.bbox_pred.weight")
    model_classes = model_state["roi_heads.box_predictor.cls_score.weight"].shape[0]
    if bbox_pred is not None and bbox_pred.shape[0] == 8 and model_classes != 2:
        reasons.append("roi_heads.box.predictor.bbox_pred.weight has 8 rows: class-agnostic box regression "
                       "(MODEL.CLS_AGNOSTIC_BBOX_REG True), not built here")
    if cls_score is not None and cls_score.shape[0] != model_classes:
        reasons.append(f"roi_heads.box.predictor.cls_score.weight: the file has {cls_score.shape[0]} classes, "
                       f"MODEL.ROI_BOX_HEAD.NUM_CLASSES is {model_classes} (another dataset, e.g. 1201 for GQA?)")
    if keys_with("roi_heads.mask.") and not mask_on:
        reasons.append(f"{first(keys_with('roi_heads.mask.'))}: a Mask R-CNN head; set MODEL.MASK_ON True to import it")
    return reasons


def _without_eps(running_var: Tensor) -> Tensor:
    """(C,) float32 variances v -> v' with v' + eps == v in float32 (for v >= eps; the nearest float sum
    below), so that torchvision's FrozenBatchNorm (rsqrt(v' + eps)) scales exactly as SGB's (rsqrt(v))."""
    adjusted = (running_var.double() - FROZEN_BATCH_NORM_EPS).float()
    for _ in range(4):
        total = adjusted + FROZEN_BATCH_NORM_EPS
        adjusted = torch.where(total < running_var, torch.nextafter(adjusted, torch.full_like(adjusted, float("inf"))),
                               torch.where(total > running_var,
                                           torch.nextafter(adjusted, torch.full_like(adjusted, float("-inf"))),
                                           adjusted))
    return adjusted


def _check_anchors(file_anchors: dict[int, Tensor], config_anchors: list[Tensor], source: str) -> None:
    """Raise SGBCheckpointError unless the file's cell anchors equal SGB's anchors for the config."""
    problems = []
    if sorted(file_anchors) != list(range(len(config_anchors))):
        problems.append(f"the file has cell anchors for levels {sorted(file_anchors)}, the config for "
                        f"{len(config_anchors)} levels P2-P6")
    for level, expected in enumerate(config_anchors):
        found = file_anchors.get(level)
        if found is not None and (found.shape != expected.shape
                                  or not torch.allclose(found.float(), expected, atol=_ANCHOR_TOLERANCE, rtol=0)):
            problems.append(f"{CELL_ANCHORS_PREFIX}{level}: file {found.tolist()} vs config {expected.tolist()}")
    if problems:
        raise SGBCheckpointError(
            f"{source}: its RPN was trained with other anchors than MODEL.RPN.ANCHOR_SIZES / ANCHOR_STRIDE / "
            "ASPECT_RATIOS give (inclusive xyxy, SGB's rule):\n  " + "\n  ".join(problems))


def _likely_reasons(state: Mapping[str, Tensor], model_state: Mapping[str, Tensor]) -> list[str]:
    """Config keys whose values likely differ from the file's, read from shapes and block counts
    (docs/reference.md#sgb-checkpoint-checks)."""
    reasons = []
    for key, dim, what, config_key in _ARCHITECTURE_PROBES:
        if key in state and key in model_state and state[key].dim() > dim and model_state[key].dim() > dim \
                and state[key].shape[dim] != model_state[key].shape[dim]:
            reasons.append(f"{what}: file {state[key].shape[dim]}, config {model_state[key].shape[dim]} ({config_key})")

    def blocks(names) -> tuple[int, ...]:
        per_stage = {}
        for name in names:
            match = _STAGE_BLOCK.match(name)
            if match:
                per_stage.setdefault(int(match[1]), set()).add(int(match[2]))
        return tuple(len(per_stage.get(stage, ())) for stage in (1, 2, 3, 4))

    file_blocks, model_blocks = blocks(state), blocks(model_state)
    if file_blocks != model_blocks:
        reasons.append(f"blocks per stage: file {file_blocks}, config {model_blocks} (MODEL.BACKBONE.CONV_BODY: "
                       "3, 4, 6, 3 is R-50, 3, 4, 23, 3 is R-101 / X-101)")
    bottleneck_key = "backbone.body.layer1.0.conv3.weight"
    if (bottleneck_key in state) != (bottleneck_key in model_state):
        reasons.append("block type: the file's ResNet uses " + ("bottleneck" if bottleneck_key in state else "basic")
                       + " blocks, the config's does not (MODEL.BACKBONE.CONV_BODY)")
    return reasons


def import_sgb_detector_state(state: Mapping[str, Tensor], detector: nn.Module, source: str) -> SGBImport:
    """Map SGB checkpoint weights (``state``: its "model" entry) onto ``detector`` (a SceneGraphDetector).

    Raises SGBCheckpointError for a file that is not a detector this config builds (reasons in the module
    docstring) and SGBStateMismatchError listing every key or shape that does not fit.
    """
    model_state = detector.state_dict()
    if _DETECTOR_PROBE_KEY not in model_state:
        raise SGBCheckpointError(
            f"{source} is an SGB checkpoint, which holds a detector: load it into the detector "
            "(MODEL.PRETRAINED_DETECTOR_CKPT for relation training, MODEL.WEIGHT for the detector tools), or a "
            "relation model into the whole scene-graph model (MODEL.WEIGHT of the relation tools)")
    state, prefix_removed = without_module_prefix(state)
    reasons = _refusals(state, model_state, mask_on=any(key.startswith("roi_heads.mask_head.") for key in model_state))
    if reasons:
        raise SGBCheckpointError(f"{source} is an SGB checkpoint this detector cannot be:\n  " + "\n  ".join(reasons))
    converted, file_anchors = {}, {}
    ignored_relation = renamed = half_precision = 0
    for name, tensor in state.items():
        if name.startswith(RELATION_PREFIX):
            ignored_relation += 1
        elif name.startswith(CELL_ANCHORS_PREFIX):
            file_anchors[int(name[len(CELL_ANCHORS_PREFIX):])] = tensor
        else:
            ours = sgb_to_ours(name)
            renamed += ours != name
            half_precision += tensor.dtype == torch.float16
            converted[ours] = tensor.float() if tensor.is_floating_point() else tensor
    for name in converted:
        if name.startswith("backbone.body.") and name.endswith(".running_var"):
            converted[name] = _without_eps(converted[name])
    if file_anchors:
        _check_anchors(file_anchors, detector.rpn.anchor_generator.inclusive_cell_anchors(), source)
    missing, unexpected, shape_mismatches = find_mismatches(model_state, converted)
    if missing or unexpected or shape_mismatches:
        raise SGBStateMismatchError(
            f"{source} (an SGB checkpoint, keys shown with SGB's names)",
            [ours_to_sgb(key) for key in missing], [ours_to_sgb(key) for key in unexpected],
            [(ours_to_sgb(key), file_shape, model_shape) for key, file_shape, model_shape in shape_mismatches],
            _likely_reasons(converted, model_state))
    return SGBImport(converted, relation_model=ignored_relation > 0, prefix_removed=prefix_removed, renamed=renamed,
                     half_precision=half_precision, anchor_levels_checked=len(file_anchors),
                     ignored_relation_keys=ignored_relation)


# ---------------------------------------------------------------------------------------- relation models
RELATION_PREDICTOR_PREFIX = RELATION_PREFIX + "predictor."
UNION_FEATURES_PREFIX = RELATION_PREFIX + "union_feature_extractor."
SGB_RELATION_FEATURE_RENAMES: tuple[tuple[str, str], ...] = (
    (RELATION_PREFIX + "box_feature_extractor.", "relation_head.box_features.box_head."),
    (UNION_FEATURES_PREFIX + "feature_extractor.pooler.reduce_channel.", "relation_head.union_features.reduce_channel."),
    (UNION_FEATURES_PREFIX + "feature_extractor.", "relation_head.union_features.box_head."),
    (UNION_FEATURES_PREFIX + "rect_conv.", "relation_head.union_features.rect_conv."),
)
"""(SGB prefix, our prefix) of the relation head's feature extractors (docs/checkpoints.md): the object MLP
fc6/fc7, the union MLP fc6/fc7, the all-levels union pooling's 3x3 conv and the box-mask CNN."""
_ATTRIBUTE_FEATURE_PREFIXES = (RELATION_PREFIX + "att_feature_extractor.",
                               UNION_FEATURES_PREFIX + "att_feature_extractor.")
SGB_PREDICTOR_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("CausalAnalysisPredictor", "vis_compress."),
    ("IMPPredictor", "context_layer.node_gru."),
    ("VCTreePredictor", "context_layer.bi_freq_prior."),
    ("TransformerTransferPredictor", "context_layer.context_obj.cross_module."),
    ("TransformerPredictor", "context_layer.context_obj.layer_stack."),
    ("MotifPredictor", "context_layer.obj_ctx_rnn."),
)
"""(SGB / RB predictor, a key prefix under roi_heads.relation.predictor. that shows it), tried in this order:
TDE's context layers carry the Motifs / VCTree context names, so its own ``vis_compress`` is tried first."""
PREDICTOR_NAMES_OF: dict[str, tuple[str, ...]] = {"TransformerTransferPredictor": ("TransformerTransferPredictor",
                                                                                   "ReBalanceHCAPredictor")}
"""The MODEL.ROI_RELATION_HEAD.PREDICTOR values that load a recognised predictor, where not only its own name."""


def sgb_predictor_of(predictor_keys) -> tuple[str, str] | None:
    """(SGB predictor name, the first key that shows it) for the keys of an SGB predictor state (relative to
    ``roi_heads.relation.predictor.``), or None when no signature matches."""
    keys = sorted(predictor_keys)
    for name, prefix in SGB_PREDICTOR_SIGNATURES:
        shown = next((key for key in keys if key.startswith(prefix)), None)
        if shown is not None:
            return name, shown
    return None


@dataclass(frozen=True)
class SGBRelationImport:
    """An imported SGB relation model: ``state`` is the SceneGraphModel's state dict (our names, float32);
    the rest says what happened, for the log."""

    state: dict[str, Tensor]
    detector: SGBImport
    predictor: str
    feature_keys: int
    predictor_keys: int
    ignored_union_keys: int

    def summary(self) -> str:
        """One sentence for the log."""
        detector = self.detector
        parts = [f"an SGB relation model with a {self.predictor}: {len(self.state)} tensors mapped",
                 f"detector part {len(detector.state)} ({detector.renamed} renamed"
                 + (", 'module.' prefix removed" if detector.prefix_removed else "")
                 + f", FrozenBatchNorm variances adjusted for torchvision's eps {FROZEN_BATCH_NORM_EPS:g}, "
                 f"{detector.anchor_levels_checked} anchor levels checked)",
                 f"{self.feature_keys} feature-extractor keys", f"{self.predictor_keys} predictor keys"]
        if self.ignored_union_keys:
            parts.append(f"{self.ignored_union_keys} {UNION_FEATURES_PREFIX}* keys not loaded (this predictor "
                         "reads no union features)")
        return "; ".join(parts)


def _relation_refusals(relation_keys: list[str]) -> list[str]:
    attribute = [key for key in relation_keys if key.startswith(_ATTRIBUTE_FEATURE_PREFIXES)]
    if attribute:
        return [f"{attribute[0]} (and {len(attribute) - 1} more): SGB's attribute head (ATTRIBUTE_ON True), "
                "not built here"]
    return []


def import_sgb_relation_state(state: Mapping[str, Tensor], model: nn.Module, predictor_name: str,
                              source: str) -> SGBRelationImport:
    """Map an SGB relation model (``state``: its "model" entry) onto ``model`` (a SceneGraphModel whose
    MODEL.ROI_RELATION_HEAD.PREDICTOR is ``predictor_name``): the detector part as
    ``import_sgb_detector_state`` does, the feature extractors by SGB_RELATION_FEATURE_RENAMES, the predictor
    by its class's ``from_sgb_state``.

    Raises SGBCheckpointError for a detector-only file, an attribute head, a predictor that is not
    ``predictor_name`` (naming both) or cannot be mapped (naming the keys), and SGBStateMismatchError listing
    every key or shape that does not fit (SGB's names for the file's keys, ours for the model's).
    """
    state, _ = without_module_prefix(state)
    relation_keys = sorted(key for key in state if key.startswith(RELATION_PREFIX))
    if not relation_keys:
        raise SGBCheckpointError(f"{source} is an SGB detector checkpoint, not a relation model: load it as "
                                 "MODEL.PRETRAINED_DETECTOR_CKPT")
    reasons = _relation_refusals(relation_keys)
    if reasons:
        raise SGBCheckpointError(f"{source} is an SGB relation model this model cannot be:\n  " + "\n  ".join(reasons))
    detector = import_sgb_detector_state(state, model.detector, source)
    head = model.relation_head
    converted = {f"detector.{key}": tensor for key, tensor in detector.state.items()}
    sgb_name_of = {}
    predictor_state, unmapped, ignored_union = {}, [], 0
    for key in relation_keys:
        tensor = state[key].float() if state[key].is_floating_point() else state[key]
        if key.startswith(RELATION_PREDICTOR_PREFIX):
            predictor_state[key[len(RELATION_PREDICTOR_PREFIX):]] = tensor
            continue
        if key.startswith(UNION_FEATURES_PREFIX) and head.union_features is None:
            ignored_union += 1
            continue
        ours = next((our + key[len(sgb):] for sgb, our in SGB_RELATION_FEATURE_RENAMES if key.startswith(sgb)), None)
        if ours is None:
            unmapped.append(key)
        else:
            converted[ours] = tensor
            sgb_name_of[ours] = key
    feature_keys = len(sgb_name_of)
    predictor = _import_sgb_predictor(predictor_state, head.predictor, predictor_name, model.mode, source)
    for key, tensor in predictor.items():
        converted[f"relation_head.predictor.{key}"] = tensor
    model_state = model.state_dict()
    missing, unexpected, shape_mismatches = find_mismatches(model_state, converted)
    if missing or unexpected or unmapped or shape_mismatches:
        raise SGBStateMismatchError(
            f"{source} (an SGB relation model; the file's keys with SGB's names where they are not the "
            "predictor's, the model's with ours)",
            missing, [*unmapped, *(sgb_name_of.get(key, key) for key in unexpected)],
            [(sgb_name_of.get(key, key), file_shape, model_shape) for key, file_shape, model_shape in shape_mismatches],
            _likely_relation_reasons(missing, unexpected))
    return SGBRelationImport(converted, detector, predictor=sgb_predictor_of(predictor_state)[0],
                             feature_keys=feature_keys, predictor_keys=len(predictor_state),
                             ignored_union_keys=ignored_union)


def _import_sgb_predictor(predictor_state: dict[str, Tensor], predictor: nn.Module, predictor_name: str, mode: str,
                          source: str) -> dict[str, Tensor]:
    """The SGB predictor state as ``predictor``'s (keys relative to it), after checking that it is the
    predictor MODEL.ROI_RELATION_HEAD.PREDICTOR names."""
    recognised = sgb_predictor_of(predictor_state)
    if recognised is None:
        shown = ", ".join(sorted(predictor_state)[:5]) or "none"
        raise SGBCheckpointError(
            f"{source}: its predictor ({RELATION_PREDICTOR_PREFIX}*: {shown}, ...) is none of the SGB / RB "
            f"predictors this project imports ({', '.join(name for name, _ in SGB_PREDICTOR_SIGNATURES)})")
    sgb_name, shown_by = recognised
    if predictor_name not in PREDICTOR_NAMES_OF.get(sgb_name, (sgb_name,)):
        raise SGBCheckpointError(
            f"{source} holds SGB's {sgb_name} (recognised by {RELATION_PREDICTOR_PREFIX}{shown_by}), but "
            f"MODEL.ROI_RELATION_HEAD.PREDICTOR is {predictor_name!r}: set it to {sgb_name!r} (and the options "
            "of the file's SGB config)")
    from_sgb_state = getattr(type(predictor), "from_sgb_state", None)
    if from_sgb_state is None:
        raise SGBCheckpointError(f"{source}: MODEL.ROI_RELATION_HEAD.PREDICTOR {predictor_name!r} "
                                 "cannot import SGB predictor weights")
    try:
        return from_sgb_state(predictor_state, mode=mode)
    except ValueError as error:
        raise SGBCheckpointError(f"{source}: {error}") from None


def _likely_relation_reasons(missing: list[str], unexpected: list[str]) -> list[str]:
    """Config keys that likely differ, read from which relation-head keys are missing or unexpected."""
    reasons = []
    if any(".union_features.reduce_channel." in key for key in [*missing, *unexpected]):
        reasons.append("the union pooling's reduce_channel conv: MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS "
                       "differs from the file's")
    if any(".clean_classifier." in key for key in missing):
        reasons.append("the clean classifier: MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER True, but the file "
                       "is a stage-1 model (load it as MODEL.PRETRAINED_MODEL_CKPT for stage 2)")
    return reasons

"""ResNet / ResNeXt + FPN backbones from torchvision, chosen by SGB's ``MODEL.BACKBONE.CONV_BODY`` names.

The body is torchvision's ResNet with FrozenBatchNorm2d everywhere (SGB), the stem and the first
``freeze_at - 1`` stages frozen (SGB's FREEZE_CONV_BODY_AT), and torchvision's FeaturePyramidNetwork on
top: P2-P5 from res2-res5 plus P6 (stride-2 subsampling of P5, ``LastLevelMaxPool``) for the RPN only.
Output feature names are "0" (P2, stride 4), "1" (P3), "2" (P4), "3" (P5) and "pool" (P6, stride 64).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from torch import nn
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ...utils.state_dict import check_state_dict_fits
from ...utils.torch_files import load_torch_file

logger = logging.getLogger(__name__)

FPN_FEATURE_NAMES = ("0", "1", "2", "3")
"""Names of P2-P5 in the backbone output; P6 is "pool"."""


@dataclass(frozen=True)
class ConvBody:
    """A ResNet family member: block type, blocks per stage, and (groups, width) when the name fixes them."""

    block: type
    depth: int
    blocks_per_stage: tuple[int, int, int, int]
    fixed_groups_and_width: tuple[int, int] | None = None


CONV_BODIES: dict[str, ConvBody] = {
    "R-18-FPN": ConvBody(resnet.BasicBlock, 18, (2, 2, 2, 2)),
    "R-50-FPN": ConvBody(resnet.Bottleneck, 50, (3, 4, 6, 3)),
    "R-101-FPN": ConvBody(resnet.Bottleneck, 101, (3, 4, 23, 3)),
    "X-101-32-8-FPN": ConvBody(resnet.Bottleneck, 101, (3, 4, 23, 3), fixed_groups_and_width=(32, 8)),
}

# torchvision ImageNet weights for (depth, groups, width per group); used only when the user opts in.
_TORCHVISION_WEIGHTS = {
    (18, 1, 64): resnet.ResNet18_Weights.IMAGENET1K_V1,
    (50, 1, 64): resnet.ResNet50_Weights.IMAGENET1K_V1,
    (101, 1, 64): resnet.ResNet101_Weights.IMAGENET1K_V1,
    (50, 32, 4): resnet.ResNeXt50_32X4D_Weights.IMAGENET1K_V1,
    (101, 32, 8): resnet.ResNeXt101_32X8D_Weights.IMAGENET1K_V1,
}
_DEFAULT_GROUPS_AND_WIDTH = (1, 64)
_MAX_FREEZE_AT = 5  # stem + four stages


def resolve_conv_body(conv_body: str, num_groups: int, width_per_group: int) -> tuple[ConvBody, int, int]:
    """The ConvBody for ``conv_body`` and its effective (groups, width per group).

    Raises ValueError listing the valid names for an unknown name, and for a (groups, width) that the
    name or the block type cannot take.
    """
    if conv_body not in CONV_BODIES:
        raise ValueError(f"MODEL.BACKBONE.CONV_BODY {conv_body!r} is unknown; valid names: {', '.join(CONV_BODIES)}")
    body = CONV_BODIES[conv_body]
    groups, width = num_groups, width_per_group
    if body.fixed_groups_and_width is not None:
        if (groups, width) not in (_DEFAULT_GROUPS_AND_WIDTH, body.fixed_groups_and_width):
            raise ValueError(
                f"MODEL.BACKBONE.CONV_BODY {conv_body!r} fixes MODEL.RESNETS.NUM_GROUPS/WIDTH_PER_GROUP to "
                f"{body.fixed_groups_and_width}, got ({groups}, {width})")
        groups, width = body.fixed_groups_and_width
    if body.block is resnet.BasicBlock and (groups, width) != _DEFAULT_GROUPS_AND_WIDTH:
        raise ValueError(f"{conv_body} uses basic blocks, which need MODEL.RESNETS.NUM_GROUPS 1 and "
                         f"WIDTH_PER_GROUP 64; got ({groups}, {width})")
    return body, groups, width


def _move_stride_to_1x1(body: resnet.ResNet) -> None:
    """SGB's STRIDE_IN_1X1 True: the first bottleneck of res3-res5 strides in its 1x1 conv, not its 3x3."""
    for stage in (body.layer2, body.layer3, body.layer4):
        first_block = stage[0]
        first_block.conv1.stride, first_block.conv2.stride = first_block.conv2.stride, (1, 1)


def _freeze_stages(body: resnet.ResNet, freeze_at: int) -> None:
    """requires_grad False for the stem (freeze_at >= 1) and res2..res{freeze_at} (SGB's _freeze_backbone)."""
    stages = [nn.ModuleList([body.conv1, body.bn1]), body.layer1, body.layer2, body.layer3, body.layer4]
    for stage in stages[:freeze_at]:
        for parameter in stage.parameters():
            parameter.requires_grad_(False)


def _load_body_weights(body: resnet.ResNet, weights_file: str, download: bool, key: tuple[int, int, int]) -> None:
    """Initialise the ResNet body from a local torchvision-format state dict, or by explicit download."""
    if weights_file:
        if not os.path.isfile(weights_file):
            raise FileNotFoundError(f"MODEL.BACKBONE_WEIGHTS file not found: {weights_file}")
        state = load_torch_file(weights_file, "MODEL.BACKBONE_WEIGHTS")
        source = f"MODEL.BACKBONE_WEIGHTS {weights_file}"
    elif download:
        if key not in _TORCHVISION_WEIGHTS:
            known = ", ".join(f"depth {d} groups {g} width {w}" for d, g, w in _TORCHVISION_WEIGHTS)
            raise ValueError(f"MODEL.BACKBONE_DOWNLOAD: torchvision has no ImageNet weights for depth {key[0]}, "
                             f"groups {key[1]}, width {key[2]}; available: {known}")
        weights = _TORCHVISION_WEIGHTS[key]
        logger.info("MODEL.BACKBONE_DOWNLOAD True: downloading %s", weights.url)
        state = weights.get_state_dict(progress=True, check_hash=True)
        source = f"torchvision weights {weights.url}"
    else:
        logger.info("Backbone starts from random init (MODEL.BACKBONE_WEIGHTS empty, BACKBONE_DOWNLOAD False)")
        return
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a state dict (name -> tensor), got {type(state).__name__}")
    state = {name: tensor for name, tensor in state.items()
             if not name.startswith("fc.") and not name.endswith("num_batches_tracked")}
    headless_state = {name: tensor for name, tensor in body.state_dict().items() if not name.startswith("fc.")}
    check_state_dict_fits(headless_state, state, source)
    body.load_state_dict(state, strict=False)


def build_resnet_fpn_backbone(conv_body: str, num_groups: int = 1, width_per_group: int = 64,
                              stride_in_1x1: bool = False, out_channels: int = 256, freeze_at: int = 2,
                              weights_file: str = "", download: bool = False) -> BackboneWithFPN:
    """ResNet/ResNeXt body + FPN; forward maps images (B, 3, H, W) to an OrderedDict of
    "0".."3" (B, out_channels, H/4..H/32, W/4..W/32) and "pool" (B, out_channels, H/64, W/64) (ceil).

    conv_body: one of CONV_BODIES. freeze_at: 0 (nothing frozen) .. 5 (stem and all stages frozen).
    weights_file: torchvision-format ResNet state dict (``fc.*`` ignored); download: opt-in to torchvision's
    ImageNet weights when no file is given. Neither: random init.
    """
    body_spec, groups, width = resolve_conv_body(conv_body, num_groups, width_per_group)
    if not 0 <= freeze_at <= _MAX_FREEZE_AT:
        raise ValueError(f"MODEL.BACKBONE.FREEZE_CONV_BODY_AT must be in 0..{_MAX_FREEZE_AT}, got {freeze_at}")
    body = resnet.ResNet(body_spec.block, list(body_spec.blocks_per_stage), groups=groups,
                         width_per_group=width, norm_layer=FrozenBatchNorm2d)
    if stride_in_1x1 and body_spec.block is resnet.Bottleneck:
        _move_stride_to_1x1(body)
    _load_body_weights(body, weights_file, download, (body_spec.depth, groups, width))
    _freeze_stages(body, freeze_at)
    stage_channels = [body_spec.block.expansion * 64 * 2 ** stage for stage in range(4)]
    return BackboneWithFPN(
        body,
        return_layers={f"layer{stage + 1}": name for stage, name in enumerate(FPN_FEATURE_NAMES)},
        in_channels_list=stage_channels,
        out_channels=out_channels,
        extra_blocks=LastLevelMaxPool(),
    )

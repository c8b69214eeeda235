"""Object and pair features of the relation head (docs/reference.md#object-features, #union-features).

Both extractors end in fc6/fc7 copied from the detector's box head (after the detector checkpoint is loaded)
and trained with the relation head; the detector's own box head stays frozen.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign, roi_align

from .box_geometry import rectangle_masks, union_boxes


def trainable_copy(module: nn.Module) -> nn.Module:
    """A deep copy of a (frozen) detector module whose parameters require grad again."""
    duplicate = copy.deepcopy(module)
    for parameter in duplicate.parameters():
        parameter.requires_grad_(True)
    return duplicate.train()


class BoxFeatureExtractor(nn.Module):
    """SGB's FPN2MLPFeatureExtractor inside the relation head: RoIAlign 7x7 on each box's FPN level, then
    fc6/fc7 + ReLU. roi_pool, box_head: the detector's pooler and TwoMLPHead (copied here).

    forward(features, boxes [(N_i, 4)] xyxy in the input frame, image_sizes [(h, w)]) -> (ΣN_i, D).
    """

    def __init__(self, roi_pool: MultiScaleRoIAlign, box_head: nn.Module) -> None:
        super().__init__()
        self.roi_pool = copy.deepcopy(roi_pool)
        self.box_head = trainable_copy(box_head)
        self.out_channels = self.box_head.fc7.out_features

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes: list[tuple[int, int]]) -> Tensor:
        return self.box_head(self.roi_pool(features, boxes, image_sizes))


def rectangle_convolution(channels: int) -> nn.Sequential:
    """SGB's ``rect_conv``: (R, 2, 27, 27) masks -> (R, channels, 7, 7)."""
    half = channels // 2
    return nn.Sequential(
        nn.Conv2d(2, half, kernel_size=7, stride=2, padding=3), nn.ReLU(inplace=True),
        nn.BatchNorm2d(half, momentum=0.01),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.Conv2d(half, channels, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True),
        nn.BatchNorm2d(channels, momentum=0.01),
    )


def channel_reduction(in_channels: int, out_channels: int) -> nn.Sequential:
    """SGB's ``reduce_channel``: 3x3 conv (kaiming-normal fan-out, bias 0) + ReLU."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.ReLU(inplace=True))


class UnionFeatureExtractor(nn.Module):
    """SGB's RelationFeatureExtractor: the visual feature of each pair's union box plus a spatial-mask
    branch, then fc6/fc7 (docs/reference.md#union-features).

    roi_pool: the detector's pooler (level scales, resolution, sampling ratio); box_head: its TwoMLPHead
    (copied here). feature_channels: F of the FPN levels. pool_all_levels (POOLING_ALL_LEVELS): RoIAlign
    the union box on every level and reduce the concatenation (L·F -> F channels) with a 3x3 conv; otherwise
    pool it on its own level like a box. The masks are (4·resolution − 1)² = 27² for resolution 7.
    """

    def __init__(self, roi_pool: MultiScaleRoIAlign, box_head: nn.Module, feature_channels: int,
                 pool_all_levels: bool = True) -> None:
        super().__init__()
        self.roi_pool = copy.deepcopy(roi_pool)
        self.featmap_names = list(roi_pool.featmap_names)
        self.resolution = roi_pool.output_size[0]
        self.rect_size = 4 * self.resolution - 1
        self.pool_all_levels = pool_all_levels
        if pool_all_levels:
            self.reduce_channel = channel_reduction(feature_channels * len(self.featmap_names), feature_channels)
        self.rect_conv = rectangle_convolution(feature_channels)
        self.box_head = trainable_copy(box_head)
        self.out_channels = self.box_head.fc7.out_features

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], pairs: list[Tensor],
                image_sizes: list[tuple[int, int]]) -> Tensor:
        """boxes [(N_i, 4)], pairs [(R_i, 2)] [subject, object] indices into boxes[i] -> (ΣR_i, D)."""
        subjects = [image_boxes[image_pairs[:, 0]] for image_boxes, image_pairs in zip(boxes, pairs)]
        objects = [image_boxes[image_pairs[:, 1]] for image_boxes, image_pairs in zip(boxes, pairs)]
        unions = [union_boxes(s, o) for s, o in zip(subjects, objects)]
        visual = self._pool_unions(features, unions, image_sizes)
        masks = torch.cat([rectangle_masks(s, o, size, self.rect_size)
                           for s, o, size in zip(subjects, objects, image_sizes)]).to(visual.dtype)
        return self.box_head(visual + self.rect_conv(masks))

    def _pool_unions(self, features: dict[str, Tensor], unions: list[Tensor],
                     image_sizes: list[tuple[int, int]]) -> Tensor:
        """Union boxes [(R_i, 4)] -> (ΣR_i, F, res, res)."""
        if not self.pool_all_levels:
            return self.roi_pool(features, unions, image_sizes)
        rois = torch.cat([torch.cat([torch.full_like(image_unions[:, :1], index), image_unions], dim=1)
                          for index, image_unions in enumerate(unions)])
        levels = [roi_align(features[name], rois, self.resolution, spatial_scale=scale,
                            sampling_ratio=self.roi_pool.sampling_ratio, aligned=False)
                  for name, scale in zip(self.featmap_names, self.roi_pool.scales)]
        return self.reduce_channel(torch.cat(levels, dim=1))

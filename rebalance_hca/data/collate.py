"""Batch collation: images zero-padded to a common size divisible by SIZE_DIVISIBILITY, and the way back to
one batch per image (what batch-invariant testing runs the model on)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torchvision.models.detection.image_list import ImageList


def to_image_list(images: Sequence[torch.Tensor], size_divisible: int = 0) -> ImageList:
    """Pad (3, H_i, W_i) images into one (B, 3, H, W) tensor, H and W multiples of ``size_divisible``.

    ``image_sizes`` keeps each unpadded (H_i, W_i).
    """
    max_height = max(image.shape[1] for image in images)
    max_width = max(image.shape[2] for image in images)
    if size_divisible > 0:
        max_height = int(math.ceil(max_height / size_divisible) * size_divisible)
        max_width = int(math.ceil(max_width / size_divisible) * size_divisible)
    batch = images[0].new_zeros((len(images), images[0].shape[0], max_height, max_width))
    for padded, image in zip(batch, images):
        padded[:, : image.shape[1], : image.shape[2]].copy_(image)
    return ImageList(batch, [(int(image.shape[1]), int(image.shape[2])) for image in images])


def split_image_list(images: ImageList, size_divisible: int = 0) -> list[ImageList]:
    """Each image of a padded batch as a batch of its own: (B, 3, H, W) -> B ImageLists (1, 3, H'_i, W'_i).

    Image i is cropped to its ``image_sizes[i]`` and padded alone to multiples of ``size_divisible``:
    bit for bit what ``to_image_list([image_i], size_divisible)`` (a loader batch of one) gives.
    """
    return [to_image_list([images.tensors[index, :, :height, :width]], size_divisible)
            for index, (height, width) in enumerate(images.image_sizes)]


class BatchCollator:
    """``[(image, target, index), ...] -> (ImageList, [target, ...], (index, ...))``."""

    def __init__(self, size_divisible: int = 0) -> None:
        self.size_divisible = size_divisible

    def __call__(self, batch):
        images, targets, indices = zip(*batch)
        return to_image_list(images, self.size_divisible), list(targets), tuple(indices)

"""Image + target transforms with SGB's semantics (docs/reference.md#image-preprocessing):
resize by MIN/MAX_SIZE, flips, colour
jitter, BGR×255 conversion and normalisation. Images enter as BGR uint8 numpy arrays (H, W, 3); targets
are the dataset's dicts of tensors with boxes (N, 4) xyxy in the image's frame."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
from torchvision.transforms import ColorJitter as _TorchColorJitter

from ..structures.boxes import scale_xyxy


class Compose:
    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, image, target):
        for transform in self.transforms:
            image, target = transform(image, target)
        return image, target


def resized_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """SGB's ``Resize.get_size``: shorter side to ``min_size`` unless the longer would pass ``max_size``.

    Returns (new_height, new_width); the longer side is int()-truncated.
    """
    size = min_size
    short_side, long_side = float(min(width, height)), float(max(width, height))
    if long_side / short_side * size > max_size:
        size = int(round(max_size * short_side / long_side))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


class Resize:
    """Resize to ``resized_size`` with one of ``min_sizes`` drawn at random; boxes scale with the image."""

    def __init__(self, min_sizes: Sequence[int], max_size: int) -> None:
        self.min_sizes = tuple(min_sizes)
        self.max_size = max_size

    def __call__(self, image: np.ndarray, target):
        height, width = image.shape[:2]
        min_size = self.min_sizes[int(torch.randint(len(self.min_sizes), (1,)))]
        new_height, new_width = resized_size(width, height, min_size, self.max_size)
        if (new_height, new_width) != (height, width):
            image = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
            target = scale_boxes(target, new_width / width, new_height / height)
        return image, target


def scale_boxes(target, scale_x: float, scale_y: float):
    """The target with its boxes resized by (``scale_x``, ``scale_y``); a new dict."""
    return {**target, "boxes": scale_xyxy(target["boxes"], scale_x, scale_y)}


class RandomFlip:
    """Flip with probability ``prob``, left-right (``horizontal``) or upside down. Boxes follow SGB's +1
    convention: x1' = W - x2 - 1, x2' = W - x1 - 1 (y likewise for a vertical flip)."""

    def __init__(self, prob: float, horizontal: bool = True) -> None:
        self.prob = prob
        self.horizontal = horizontal

    def __call__(self, image: np.ndarray, target):
        if self.prob <= 0 or float(torch.rand(1)) >= self.prob:
            return image, target
        axis, low, high = (1, 0, 2) if self.horizontal else (0, 1, 3)
        extent = image.shape[axis]
        old, boxes = target["boxes"], target["boxes"].clone()
        boxes[:, low], boxes[:, high] = extent - old[:, high] - 1, extent - old[:, low] - 1
        return np.ascontiguousarray(np.flip(image, axis)), {**target, "boxes": boxes}


class ColorJitter:
    """torchvision's colour jitter on the RGB image; identity when every strength is 0."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        self.enabled = any(value > 0 for value in (brightness, contrast, saturation, hue))
        self.jitter = _TorchColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, image: np.ndarray, target):
        if not self.enabled:
            return image, target
        rgb = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute(2, 0, 1)
        jittered = self.jitter(rgb).permute(1, 2, 0).numpy()[:, :, ::-1]
        return np.ascontiguousarray(jittered), target


class ToNormalizedTensor:
    """(H, W, 3) BGR uint8 -> (3, H, W) float32: BGR in 0..255 if ``to_bgr255`` else RGB in 0..1,
    then (x - mean) / std per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], to_bgr255: bool = True) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.to_bgr255 = to_bgr255

    def __call__(self, image: np.ndarray, target):
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        if not self.to_bgr255:
            tensor = tensor.flip(0) / 255.0
        return (tensor - self.mean) / self.std, target


def build_transforms(cfg, is_train: bool) -> Compose:
    """The INPUT.* pipeline; training adds flips (INPUT.HORIZONTAL/VERTICAL_FLIP_PROB_TRAIN) and jitter."""
    if is_train:
        min_sizes, max_size = cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN
        jitter = ColorJitter(cfg.INPUT.BRIGHTNESS, cfg.INPUT.CONTRAST, cfg.INPUT.SATURATION, cfg.INPUT.HUE)
        flips = [RandomFlip(cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN, horizontal=True),
                 RandomFlip(cfg.INPUT.VERTICAL_FLIP_PROB_TRAIN, horizontal=False)]
    else:
        min_sizes, max_size = (cfg.INPUT.MIN_SIZE_TEST,), cfg.INPUT.MAX_SIZE_TEST
        jitter, flips = ColorJitter(0, 0, 0, 0), []
    return Compose([
        jitter,
        Resize(min_sizes, max_size),
        *flips,
        ToNormalizedTensor(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD, cfg.INPUT.TO_BGR255),
    ])

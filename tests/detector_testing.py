"""Shared helpers of the detector tests: a tiny CPU config, random images and targets."""
from __future__ import annotations

import torch
from torchvision.models.detection.image_list import ImageList

from rebalance_hca.config import load_config

TINY_NUM_CLASSES = 6

TINY_DETECTOR_OPTS = [
    "MODEL.DEVICE", "cpu",
    "MODEL.BACKBONE.CONV_BODY", "R-18-FPN",
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32",
    "MODEL.RPN.RPN_MID_CHANNEL", "32",
    "MODEL.RPN.PRE_NMS_TOP_N_TRAIN", "200",
    "MODEL.RPN.PRE_NMS_TOP_N_TEST", "200",
    "MODEL.RPN.POST_NMS_TOP_N_TRAIN", "100",
    "MODEL.RPN.POST_NMS_TOP_N_TEST", "100",
    "MODEL.RPN.FPN_POST_NMS_TOP_N_TRAIN", "100",
    "MODEL.RPN.FPN_POST_NMS_TOP_N_TEST", "100",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64",
    "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "20",
    "MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "64",
    "MODEL.ROI_BOX_HEAD.NUM_CLASSES", str(TINY_NUM_CLASSES),
]


def tiny_config(*extra_opts: str):
    """A frozen config of an R-18-FPN detector small enough for CPU unit tests."""
    return load_config(None, [*TINY_DETECTOR_OPTS, *extra_opts])


def random_images(sizes: list[tuple[int, int]], padded: tuple[int, int] = (128, 160), seed: int = 0) -> ImageList:
    """A batch of random images (B, 3, *padded) with the given unpadded (h, w) sizes."""
    generator = torch.Generator().manual_seed(seed)
    tensors = torch.zeros(len(sizes), 3, *padded)
    for image, (height, width) in zip(tensors, sizes):
        image[:, :height, :width] = torch.randn(3, height, width, generator=generator)
    return ImageList(tensors, list(sizes))


def random_targets(sizes: list[tuple[int, int]], boxes_per_image: int = 3, seed: int = 0) -> list[dict]:
    """Targets with ``boxes_per_image`` random boxes (at least 8 px wide/high) inside each image."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for height, width in sizes:
        x1 = torch.rand(boxes_per_image, generator=generator) * (width - 40)
        y1 = torch.rand(boxes_per_image, generator=generator) * (height - 40)
        w = 8 + torch.rand(boxes_per_image, generator=generator) * 30
        h = 8 + torch.rand(boxes_per_image, generator=generator) * 30
        boxes = torch.stack([x1, y1, x1 + w, y1 + h], dim=1)
        labels = torch.randint(1, TINY_NUM_CLASSES, (boxes_per_image,), generator=generator)
        targets.append({"boxes": boxes, "labels": labels})
    return targets

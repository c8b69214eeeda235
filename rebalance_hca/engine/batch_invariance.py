"""Batch-invariant testing: how the test loops feed a loader batch to a model (TEST.BATCH_INVARIANT;
docs/training.md#batch-invariant-testing).

In one forward over a padded batch, an image's outputs depend on the other images of the batch: its padded
size (hence the zero border the backbone convolves, and what reaches its right and bottom features), and the
number of rows of every matrix product, whose rounding the math libraries choose by shape. Test metrics then
change with TEST.IMS_PER_BATCH and with the number of processes (which deals different images together).
Run image by image, each image is padded alone as a loader batch of one would pad it, so its predictions are
bit-identical whatever the batch size and the process it lands on.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList

from ..data.collate import split_image_list


def predict_batch(model: nn.Module, images: ImageList, targets: list[dict[str, Tensor]] | None,
                  batch_invariant: bool, size_divisible: int) -> list[Any]:
    """The eval outputs of ``model(images, targets)``, one per image of the loader batch ``images``.

    batch_invariant: each image goes through the model alone, cropped to its size and padded to multiples
    of ``size_divisible`` (the loader's DATALOADER.SIZE_DIVISIBILITY), with its own target; otherwise the
    padded batch goes through in one forward (faster on a GPU, but the outputs depend on the batch).
    """
    if not batch_invariant:
        return list(model(images, targets))
    outputs = []
    for index, image in enumerate(split_image_list(images, size_divisible)):
        outputs.extend(model(image, None if targets is None else [targets[index]]))
    return outputs

"""SGDet on the user's own images (tools/demo.py): images from a folder, an image list or a video, resized as
the config's test transform resizes the dataset's, predicted in batches, and returned in each image's
original frame.

A file that cannot be used (not decodable as an image, a truncated JPEG, or smaller than ``min_side`` pixels
on a side) is skipped with a warning that names it; the others are processed. Photos are read upright (EXIF
orientation applied).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import cv2
import numpy as np
import torch
from torch import nn

from ..data.collate import to_image_list
from ..modeling.weights import unwrap_model
from ..data.image_io import UNDECODABLE, decode_image_file
from ..utils.cli import UserInputError
from .batch_invariance import predict_batch
from .relation_inference import to_evaluation_frame

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_LIST_EXTENSIONS = (".txt", ".lst")
MIN_IMAGE_SIDE = 16


@dataclass
class InputImage:
    """One image to process. name: a file-name stem for its outputs (unique within a run); source: where
    it came from (a path, or "<video>#frame=<n>"); image: (H, W, 3) BGR uint8."""

    name: str
    source: str
    image: np.ndarray


class ImageSource:
    """The images of ``path``: a folder (every file in it, sorted by name), an image list (a .txt / .lst file,
    one path a line, relative paths from the list's folder, "#" comments), a video (one frame every
    ``every_n_frames``) or a single image. Iterating yields InputImage; ``skipped`` lists (source, reason)
    of what was skipped. A path that does not exist, an empty folder or list, or a video that cannot be
    opened is a UserInputError, raised before any image is read."""

    def __init__(self, path: str, every_n_frames: int = 30, min_side: int = MIN_IMAGE_SIDE) -> None:
        if every_n_frames < 1:
            raise UserInputError(f"--every-n-frames must be >= 1, got {every_n_frames}")
        if not os.path.exists(path):
            raise UserInputError(f"input not found: {path}")
        self.path = path
        self.every_n_frames = every_n_frames
        self.min_side = min_side
        self.skipped: list[tuple[str, str]] = []
        self.is_video = os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)
        self.files = [] if self.is_video else self._image_files()
        if self.is_video:
            capture = cv2.VideoCapture(path)
            opened = capture.isOpened()
            capture.release()
            if not opened:
                raise UserInputError(f"video cannot be opened: {path}")

    def _image_files(self) -> list[str]:
        if os.path.isdir(self.path):
            files = sorted(os.path.join(self.path, name) for name in os.listdir(self.path)
                           if not name.startswith(".") and os.path.isfile(os.path.join(self.path, name)))
            if not files:
                raise UserInputError(f"input folder has no files: {self.path}")
            return files
        if not self.path.lower().endswith(IMAGE_LIST_EXTENSIONS):
            return [self.path]
        folder = os.path.dirname(os.path.abspath(self.path))
        with open(self.path, encoding="utf-8") as stream:
            lines = [line.strip() for line in stream]
        files = [os.path.join(folder, line) for line in lines if line and not line.startswith("#")]
        if not files:
            raise UserInputError(f"image list names no image: {self.path}")
        return files

    def __iter__(self) -> Iterator[InputImage]:
        if self.is_video:
            yield from self._video_frames()
            return
        names: set[str] = set()
        for path in self.files:
            if not os.path.isfile(path):
                self._skip(path, "file not found")
                continue
            image = self._read(path)
            if image is not None:
                image = self._checked(path, image)
            if image is not None:
                name = _unique(os.path.splitext(os.path.basename(path))[0], names)
                yield InputImage(name, path, image)

    def _video_frames(self) -> Iterator[InputImage]:
        capture = cv2.VideoCapture(self.path)
        stem = os.path.splitext(os.path.basename(self.path))[0]
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                if index % self.every_n_frames == 0:
                    source = f"{self.path}#frame={index}"
                    image = self._checked(source, frame)
                    if image is not None:
                        yield InputImage(f"{stem}_frame{index:06d}", source, image)
                index += 1
        finally:
            capture.release()

    def _read(self, path: str) -> np.ndarray | None:
        """The image at ``path`` upright, as a viewer shows it (EXIF orientation applied): unlike the datasets,
        whose annotations are in the stored frame, a photo of the user's has none, so the model sees it
        upright and the outputs are in that frame. None after a warning naming it when it cannot be read, is
        no image or is truncated."""
        try:
            image, problem = decode_image_file(path, upright=True)
        except OSError as error:
            self._skip(path, f"cannot be read ({error.strerror or error})")
            return None
        if problem == UNDECODABLE:
            self._skip(path, "not an image (it cannot be decoded)")
        elif problem:
            self._skip(path, f"damaged image (it {problem})")
        return image

    def _checked(self, source: str, image: np.ndarray) -> np.ndarray | None:
        """The image, or None after a warning naming ``source`` when it is too small."""
        if min(image.shape[:2]) >= self.min_side:
            return image
        self._skip(source, f"too small ({image.shape[1]}x{image.shape[0]} pixels, at least {self.min_side} per side)")
        return None

    def _skip(self, source: str, reason: str) -> None:
        logger.warning("Skipping %s: %s", source, reason)
        self.skipped.append((source, reason))


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}_{number}"
    taken.add(candidate)
    return candidate


def batches(images: Iterator[InputImage], batch_size: int) -> Iterator[list[InputImage]]:
    """Consecutive groups of at most ``batch_size`` images."""
    batch: list[InputImage] = []
    for image in images:
        batch.append(image)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.no_grad()
def predict_scene_graphs(model: nn.Module, images: list[np.ndarray], transform: Callable, size_divisible: int,
                         device: torch.device, amp_dtype: torch.dtype | None = None,
                         batch_invariant: bool = True) -> list[dict[str, np.ndarray]]:
    """SGDet predictions of BGR uint8 images [(H_i, W_i, 3)], each in its original frame.

    transform: the test transform (``build_transforms(cfg, is_train=False)``): resize, normalise.
    batch_invariant (TEST.BATCH_INVARIANT): the model sees one image at a time (``predict_batch``), so an
    image's scene graph does not depend on the images batched with it.
    Returns per image numpy arrays: "boxes" (k, 4) xyxy in the (W_i, H_i) frame, "labels" (k,), "scores"
    (k,), "rel_pair_idxs" (p, 2) ranked, "rel_scores" (p, P), "rel_labels" (p,), "triplet_scores" (p,).
    """
    model = unwrap_model(model).eval()
    tensors = [transform(image, {"boxes": torch.zeros((0, 4))})[0] for image in images]
    batch = to_image_list(tensors, size_divisible).to(device)
    with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        predictions = predict_batch(model, batch, None, batch_invariant, size_divisible)
    results = []
    for image, prediction, size in zip(images, predictions, batch.image_sizes):
        info = {"width": int(image.shape[1]), "height": int(image.shape[0])}
        full = to_evaluation_frame(prediction, size, info, None, "sgdet")
        full["rel_labels"] = prediction["rel_labels"].cpu().numpy()
        full["triplet_scores"] = prediction["triplet_scores"].float().cpu().numpy()
        results.append(full)
    return results

"""Strict image decoding: an image file is decoded whole, or it is reported as damaged, naming the file.

``cv2.imread`` decodes a JPEG cut short without an error: libjpeg prints "Premature end of JPEG file"
(without a file name) and fills the missing rows with grey, which a model would then train or be tested on.
So before decoding, a JPEG's marker structure is walked to its end-of-image marker (``jpeg_is_truncated``); a
file that ends first is reported as truncated. The bytes are then decoded with ``cv2.imdecode`` (the same
codecs and pixels as ``cv2.imread``); damage the codecs cannot decode past (a corrupt PNG chunk, a broken
header, a file that is no image) makes it return nothing and is reported too.
"""
from __future__ import annotations

import cv2
import numpy as np

from .files import DataFormatError

JPEG_START = b"\xff\xd8"
_END_OF_IMAGE = 0xD9
_START_OF_SCAN = 0xDA
# Markers without a length field: TEM, RST0-RST7, SOI; the other marker codes are C0-FE.
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8), 0xD8])
_FIRST_SEGMENT_MARKER = 0xC0

UNDECODABLE = "cannot be decoded"
TRUNCATED = "is truncated (its JPEG data ends before the end-of-image marker)"


class DamagedImageError(DataFormatError):
    """An image file that cannot be decoded, or whose data ends early; the message names the file."""


def jpeg_is_truncated(data: bytes) -> bool:
    """Whether the JPEG stream ``data`` (starting with SOI, FF D8) ends before its end-of-image marker (FF D9),
    read along its marker structure as libjpeg reads it.

    Segments with a length field are skipped whole (so an embedded thumbnail's own end-of-image marker is
    not taken for the file's); after each start-of-scan segment the entropy-coded data runs to the next
    marker, an FF byte followed by anything but 00 (a stuffed FF), D0-D7 (restart markers) or FF (fill).
    Bytes after the end-of-image marker are ignored, as libjpeg ignores them. A stream that breaks its
    structure before it ends (a byte that is no marker code where a marker belongs) is damaged, not
    truncated: False.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    size = len(buffer)
    ff_positions = np.flatnonzero(buffer[:-1] == 0xFF)
    following = buffer[ff_positions + 1]
    marker_positions = ff_positions[(following != 0x00) & (following != 0xFF)
                                    & ((following < 0xD0) | (following > 0xD7))]
    position = len(JPEG_START)
    while position < size:
        if buffer[position] != 0xFF:  # stray bytes between segments: libjpeg skips to the next marker
            after = np.searchsorted(marker_positions, position)
            if after == len(marker_positions):
                return True
            position = int(marker_positions[after])
        while position < size and buffer[position] == 0xFF:
            position += 1
        if position >= size:
            return True
        marker = int(buffer[position])
        position += 1
        if marker == _END_OF_IMAGE:
            return False
        if marker in _STANDALONE_MARKERS:
            continue
        if marker < _FIRST_SEGMENT_MARKER:  # no marker code: damaged, not truncated
            return False
        if position + 2 > size:
            return True
        position += (int(buffer[position]) << 8) | int(buffer[position + 1])
        if marker == _START_OF_SCAN:
            after = np.searchsorted(marker_positions, position)
            if after == len(marker_positions):
                return True
            position = int(marker_positions[after])
    return True


def decode_image_file(path: str, upright: bool = False) -> tuple[np.ndarray | None, str]:
    """(image, "") with the image as BGR uint8 (H, W, 3), or (None, what is wrong: ``UNDECODABLE`` or
    ``TRUNCATED``). ``upright``: apply the EXIF Orientation tag (a photo as a viewer shows it); otherwise
    the stored frame, which is the one the datasets' annotations use. OSError when the file cannot be read."""
    with open(path, "rb") as stream:
        data = stream.read()
    if data.startswith(JPEG_START) and jpeg_is_truncated(data):
        return None, TRUNCATED
    flags = cv2.IMREAD_COLOR if upright else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags) if data else None
    if image is None:
        return None, UNDECODABLE
    return image, ""


def read_image(path: str, upright: bool = False) -> np.ndarray:
    """``decode_image_file``'s image; DamagedImageError naming ``path`` when it is damaged or no image."""
    image, problem = decode_image_file(path, upright)
    if image is None:
        raise DamagedImageError(f"image {problem}: {path}")
    return image

"""Damaged images are caught: a JPEG cut short and a corrupt PNG are reported naming the file by the strict
reader the datasets use, skipped with a named warning by the demo, and reported as one line when a loader
(also a loader worker) meets them."""
from __future__ import annotations

import io
import logging

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from rebalance_hca.data.image_io import (TRUNCATED, UNDECODABLE, DamagedImageError, decode_image_file,
                                         jpeg_is_truncated, read_image)
from rebalance_hca.data.loader_errors import DataErrorReportingLoader, data_error_message
from rebalance_hca.data.files import DataFormatError
from rebalance_hca.engine.image_inference import ImageSource
from rebalance_hca.utils.cli import UserInputError


def _picture(height: int = 96, width: int = 128) -> np.ndarray:
    """A smooth random BGR picture (JPEG-like content)."""
    noise = np.random.default_rng(0).random((height, width, 3)) * 255
    return cv2.GaussianBlur(noise.astype(np.uint8), (0, 0), 3)


def _jpeg_variants() -> dict[str, bytes]:
    """The same picture as the JPEG layouts a dataset holds: baseline, progressive, optimised Huffman tables,
    restart markers, grey, 4:4:4, an EXIF thumbnail (a whole JPEG inside an APP1 segment), trailing bytes."""
    picture = _picture()
    pil = Image.fromarray(picture[:, :, ::-1])
    variants = {"baseline": cv2.imencode(".jpg", picture)[1].tobytes(),
                "restart": cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])[1].tobytes(),
                "progressive": cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()}
    for name, image, options in [("optimized", pil, {"optimize": True}), ("grey", pil.convert("L"), {}),
                                 ("444", pil, {"quality": 100, "subsampling": 0})]:
        stream = io.BytesIO()
        image.save(stream, "JPEG", **options)
        variants[name] = stream.getvalue()
    thumbnail = cv2.imencode(".jpg", picture[::8, ::8])[1].tobytes()
    app1 = b"Exif\x00\x00" + thumbnail
    variants["thumbnail"] = (variants["baseline"][:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
                             + variants["baseline"][2:])
    variants["trailing bytes"] = variants["baseline"] + b"\x00\x01 trailing \xff\xd9 data"
    return variants


@pytest.mark.parametrize("name, data", list(_jpeg_variants().items()))
def test_a_whole_jpeg_is_complete_and_every_cut_of_it_is_truncated(name, data):
    assert not jpeg_is_truncated(data)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    end_of_image = data.index(b"\x00\x01 trailing") if name == "trailing bytes" else len(data)
    assert all(jpeg_is_truncated(data[:cut]) for cut in range(2, end_of_image))


def test_a_jpeg_cut_in_half_and_a_corrupt_png_raise_naming_the_file(tmp_path):
    picture = _picture()
    whole = cv2.imencode(".jpg", picture)[1].tobytes()
    half = tmp_path / "half.jpg"
    half.write_bytes(whole[:len(whole) // 2])
    png = bytearray(cv2.imencode(".png", picture)[1].tobytes())
    png[len(png) // 2:len(png) // 2 + 16] = bytes(16)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(bytes(png))
    # What the readers before this one did: OpenCV's file reader returns the half picture, grey below.
    assert cv2.imread(str(half)) is not None

    with pytest.raises(DamagedImageError, match=f"^image {TRUNCATED.replace('(', '.').replace(')', '.')}: {half}$"):
        read_image(str(half))
    with pytest.raises(DamagedImageError, match=f"^image {UNDECODABLE}: {corrupt}$"):
        read_image(str(corrupt))
    assert isinstance(DamagedImageError("x"), DataFormatError)


def test_a_good_image_reads_as_opencv_reads_it(tmp_path):
    path = tmp_path / "good.jpg"
    cv2.imwrite(str(path), _picture())
    expected = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    np.testing.assert_array_equal(read_image(str(path)), expected)
    np.testing.assert_array_equal(decode_image_file(str(path), upright=True)[0], cv2.imread(str(path)))


def test_the_demo_skips_a_truncated_jpeg_with_a_warning_naming_it(tmp_path, caplog):
    whole = cv2.imencode(".jpg", _picture())[1].tobytes()
    (tmp_path / "a_good.jpg").write_bytes(whole)
    (tmp_path / "b_half.jpg").write_bytes(whole[:len(whole) // 2])
    source = ImageSource(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        names = [item.name for item in source]
    assert names == ["a_good"]
    half = str(tmp_path / "b_half.jpg")
    assert source.skipped == [(half, f"damaged image (it {TRUNCATED})")]
    assert f"Skipping {half}: damaged image (it is truncated" in caplog.text


class _BadImageDataset(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        if index == 2:
            raise DamagedImageError(f"image {TRUNCATED}: /data/images/2.jpg")
        return torch.zeros(1)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_loader_reports_a_bad_image_as_one_line_also_from_a_worker(num_workers):
    loader = DataErrorReportingLoader(_BadImageDataset(), batch_size=1, num_workers=num_workers)
    with pytest.raises(UserInputError) as error:
        list(loader)
    assert str(error.value) == f"image {TRUNCATED}: /data/images/2.jpg"
    assert isinstance(error.value.__cause__, DamagedImageError)


def test_the_message_of_a_worker_traceback_is_its_last_line():
    copied = DamagedImageError("Caught DamagedImageError in DataLoader worker process 0.\nOriginal Traceback (most "
                               "recent call last):\n  File \"x.py\", line 1, in <module>\n"
                               "rebalance_hca.data.image_io.DamagedImageError: image cannot be decoded: /d/1.jpg\n")
    assert data_error_message(copied) == "image cannot be decoded: /d/1.jpg"
    assert data_error_message(DataFormatError("plain: /d/2.jpg")) == "plain: /d/2.jpg"

"""The streamed test pass: the chunked predictions file (written and read a chunk at a time, version 1 still
read, damage named), and the engine's predict-to-file and evaluate-from-file, which must give exactly what
the in-memory path gives."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch
from torch import nn

from eval_random_inputs import numpy_image
from rebalance_hca.data.collate import BatchCollator
from rebalance_hca.data.samplers import InferenceBatchSampler, SeededDataset
from rebalance_hca.engine import relation_inference
from rebalance_hca.engine.relation_inference import (evaluate_split, evaluate_split_file, predict_split,
                                                     predict_split_to_file, usable_cached_predictions)
from rebalance_hca.evaluation import compact_oi_prediction, compact_prediction, load_predictions, save_predictions
from rebalance_hca.evaluation import predictions_io
from rebalance_hca.evaluation.predictions_io import PredictionsWriter, iter_predictions, read_predictions_header
from rebalance_hca.evaluation.protocols import OPEN_IMAGES_PROTOCOL, SGB_PROTOCOL

NUM_PREDICATES = 6
IMAGE_SIZE = (30, 40)   # (height, width) of every image: predictions need no rescaling


def random_split(mode: str, count: int, seed: int) -> list[tuple[dict, dict]]:
    """Random images whose GT boxes are not empty (so that a model sees all of them in PredCls / SGCls)."""
    rng = np.random.default_rng(seed)
    images = [numpy_image(rng, mode, NUM_PREDICATES, num_detections=int(rng.integers(2, 12)),
                          tie_scores=bool(rng.integers(0, 2))) for _ in range(count)]
    for groundtruth, _ in images:
        groundtruth["boxes"][:, 2:] += 1      # in PredCls / SGCls the prediction shares this array
    return images


def compact_split(images, mode: str) -> list[dict]:
    return [compact_prediction(prediction, groundtruth, mode, NUM_PREDICATES) for groundtruth, prediction in images]


def assert_same_prediction(read: dict, written: dict) -> None:
    assert read.keys() == written.keys()
    for key, value in written.items():
        assert np.array_equal(np.asarray(read[key]), np.asarray(value)), key


def test_a_file_of_several_chunks_reads_back_exactly(tmp_path):
    images = random_split("sgdet", 11, seed=0)
    compact = compact_split(images, "sgdet")
    image_ids = list(range(100, 111))
    path = tmp_path / "p.npz"
    with PredictionsWriter(path, "sgdet", NUM_PREDICATES, metadata={"split": "test"}, chunk_images=4) as writer:
        for image_id, prediction in zip(image_ids, compact):
            writer.add(image_id, prediction)
    with np.load(path) as data:
        assert int(data["num_chunks"]) == 3 and "chunk00002/boxes" in data.files
    header = read_predictions_header(path)
    assert header["image_ids"].tolist() == image_ids and header["metadata"] == {"split": "test"}
    streamed = list(iter_predictions(path))
    assert [image_id for image_id, _ in streamed] == image_ids
    for (_, read), written in zip(streamed, compact):
        assert_same_prediction(read, written)
    loaded = load_predictions(path)
    assert loaded["mode"] == "sgdet" and len(loaded["predictions"]) == 11


def test_version_1_files_are_still_read(tmp_path):
    """A version-1 file is a version-2 file's single chunk with its fields at the top level."""
    compact = compact_split(random_split("predcls", 5, seed=1), "predcls")
    save_predictions(tmp_path / "v2.npz", compact, "predcls", NUM_PREDICATES)
    with np.load(tmp_path / "v2.npz") as data:
        fields = {name.removeprefix("chunk00000/"): data[name] for name in data.files if name != "num_chunks"}
    np.savez_compressed(tmp_path / "v1.npz", **{**fields, "version": np.array(1)})
    for (_, read), written in zip(iter_predictions(tmp_path / "v1.npz"), compact):
        assert_same_prediction(read, written)


def test_damage_is_named(tmp_path):
    compact = compact_split(random_split("sgdet", 9, seed=2), "sgdet")
    path = tmp_path / "p.npz"
    with PredictionsWriter(path, "sgdet", NUM_PREDICATES, chunk_images=3) as writer:
        for image_id, prediction in enumerate(compact):
            writer.add(image_id, prediction)
    data = bytearray(path.read_bytes())
    with np.load(path) as archive:      # flip bytes inside the last chunk's compressed boxes
        info = archive.zip.getinfo("chunk00002/boxes.npy")
    middle = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[middle:middle + 8] = bytes(255 - value for value in data[middle:middle + 8])
    (tmp_path / "flipped.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"flipped\.npz: chunk chunk00002 is not readable"):
        list(iter_predictions(tmp_path / "flipped.npz"))
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.npz: not a readable predictions file"):
        read_predictions_header(tmp_path / "cut.npz")


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    compact = compact_split(random_split("sgdet", 4, seed=3), "sgdet")
    path = tmp_path / "p.npz"
    save_predictions(path, compact[:2], "sgdet", NUM_PREDICATES)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="has OI candidates"):
        with PredictionsWriter(path, "sgdet", NUM_PREDICATES, chunk_images=1) as writer:
            writer.add(0, compact[0])
            groundtruth = random_split("sgdet", 1, seed=3)[0][0]
            writer.add(1, compact_oi_prediction(random_split("sgdet", 1, seed=3)[0][1], groundtruth, "sgdet",
                                                NUM_PREDICATES))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["p.npz"]


class ListDataset(torch.utils.data.Dataset):
    """The dataset contract of the test pass over fixed (groundtruth, full prediction) pairs."""

    def __init__(self, images):
        self.images = images
        self.ind_to_predicates = ["__background__"] + [f"p{i}" for i in range(1, NUM_PREDICATES)]
        self.ind_to_classes = ["__background__", "a", "b", "c"]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return torch.zeros(3, *IMAGE_SIZE), {"index": torch.tensor(index)}, index

    def get_img_info(self, index):
        return {"height": IMAGE_SIZE[0], "width": IMAGE_SIZE[1]}

    def get_groundtruth(self, index, evaluation=False):
        groundtruth = self.images[index][0]
        return {"boxes": torch.as_tensor(groundtruth["boxes"]), "labels": torch.as_tensor(groundtruth["labels"]),
                "relation_tuple": torch.as_tensor(groundtruth["relations"])}


class ReplayModel(nn.Module):
    """Returns each image's stored full prediction."""

    def __init__(self, images):
        super().__init__()
        self.images = images

    def forward(self, images, targets):
        return [{key: torch.as_tensor(value) for key, value in self.images[int(target["index"])][1].items()}
                for target in targets]


def loader_of(dataset, batch_size: int = 2):
    return torch.utils.data.DataLoader(SeededDataset(dataset), collate_fn=BatchCollator(),
                                       batch_sampler=InferenceBatchSampler(len(dataset), batch_size))


@pytest.mark.parametrize("mode, protocol", [("sgdet", SGB_PROTOCOL), ("predcls", SGB_PROTOCOL),
                                            ("sgcls", OPEN_IMAGES_PROTOCOL)], ids=["sgdet-vg", "predcls-vg", "sgcls-oi"])
def test_predict_to_file_and_evaluate_from_file_equal_the_in_memory_path(mode, protocol, tmp_path, monkeypatch):
    """Several sends to rank 0 and several chunks (both made small); the file holds the images in index
    order, and its evaluation equals the in-memory one, number for number."""
    monkeypatch.setattr(relation_inference, "GATHER_BATCHES", 2)
    monkeypatch.setattr(predictions_io, "CHUNK_IMAGES", 3)
    images = random_split(mode, 13, seed=4)
    dataset, model = ListDataset(images), ReplayModel(images)
    path = str(tmp_path / "predictions.npz")
    arguments = (torch.device("cpu"), None, mode, NUM_PREDICATES)
    predict_split_to_file(model, loader_of(dataset), *arguments, path, {"split": "test"}, protocol=protocol)
    in_memory = predict_split(model, loader_of(dataset), *arguments, protocol=protocol)
    streamed = list(iter_predictions(path))
    assert [image_id for image_id, _ in streamed] == list(range(13))
    for image_id, read in streamed:
        assert_same_prediction(read, in_memory[image_id])
    counts = np.arange(NUM_PREDICATES)
    from_file = evaluate_split_file(dataset, path, mode, None, counts, protocol=protocol)
    expected = evaluate_split(dataset, in_memory, mode, None, counts, protocol=protocol)
    assert from_file["report"] == expected["report"] and from_file["detection"] == expected["detection"]
    assert str(from_file.get("sgg", from_file.get("oi"))) == str(expected.get("sgg", expected.get("oi")))


def test_a_file_that_misses_images_is_refused(tmp_path):
    images = random_split("sgdet", 4, seed=5)
    path = tmp_path / "p.npz"
    save_predictions(path, compact_split(images[:3], "sgdet"), "sgdet", NUM_PREDICATES)
    with pytest.raises(ValueError, match="holds 3 predictions, not one per image of the 4-image split"):
        evaluate_split_file(ListDataset(images), str(path), "sgdet", None, None)


def test_cached_predictions_are_reused_only_when_whole_and_of_the_same_run(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rebalance_hca")
    compact = compact_split(random_split("sgdet", 7, seed=6), "sgdet")
    path = str(tmp_path / "p.npz")
    with PredictionsWriter(path, "sgdet", NUM_PREDICATES, metadata={"weights": "a"}, chunk_images=2) as writer:
        for image_id, prediction in enumerate(compact):
            writer.add(image_id, prediction)
    assert usable_cached_predictions(path, {"weights": "a"})
    assert not usable_cached_predictions(path, {"weights": "b"})
    assert "written for weights='a' (now 'b')" in caplog.text
    assert not usable_cached_predictions(str(tmp_path / "absent.npz"), {"weights": "a"})
    with np.load(path) as archive:
        info = archive.zip.getinfo("chunk00003/pair_idxs.npy")
    data = bytearray(open(path, "rb").read())
    middle = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[middle:middle + 4] = bytes(255 - value for value in data[middle:middle + 4])
    open(path, "wb").write(bytes(data))
    assert not usable_cached_predictions(path, {"weights": "a"})
    assert "chunk chunk00003 is not readable" in caplog.text

"""SynthVG: reproducible files, VG150 layout, loader round trip, relation rules, long tail and annotation bias."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from tool_loading import load_tool
from rebalance_hca.data import synthetic
from rebalance_hca.data.glove import embedding_for_names, parse_glove_text
from rebalance_hca.data.synthetic import (
    HEAD_TO_TAIL_MIN_RATIO, SynthVGOptions, generate_images, image_ids, write_synthvg,
)
from rebalance_hca.data.synthvg.annotation import (
    ANNOTATION_KEEP_RATE, DUPLICATE_RELATION_RATE, GENERAL_FOR_INFORMATIVE_RATE,
)
from rebalance_hca.data.synthvg.relations import true_relations
from rebalance_hca.data.synthvg.scene import Scene, SceneObject
from rebalance_hca.data.synthvg.vg_scale import VG_SCALE_IMAGES, vg_scale_arrays
from rebalance_hca.data.synthvg.vocabulary import (
    ATTRIBUTES, GENERAL_OF_INFORMATIVE, OBJECT_CLASSES, PREDICATE_TO_ID, PREDICATES,
)
from rebalance_hca.data.synthvg.writers import MARKER_FILE_NAME
from rebalance_hca.data.vg.writer import xyxy_to_vg_cxcywh
from rebalance_hca.data.vg import VGDataset
from rebalance_hca.structures.boxes import cxcywh_to_xyxy_truncated

SMALL = SynthVGOptions(num_images=40, seed=3, image_size=96, test_fraction=0.3)
ID_TO_PREDICATE = {index: name for name, index in PREDICATE_TO_ID.items()}


def _files(folder: str) -> dict[str, bytes]:
    contents = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                contents[os.path.relpath(path, folder)] = handle.read()
    return contents


def _paths(folder: str) -> dict[str, str]:
    return {
        "img_dir": os.path.join(folder, "VG_100K"),
        "roidb_file": os.path.join(folder, "VG-SGG-with-attri.h5"),
        "dict_file": os.path.join(folder, "VG-SGG-dicts-with-attri.json"),
        "image_file": os.path.join(folder, "image_data.json"),
    }


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> str:
    return write_synthvg(str(tmp_path_factory.mktemp("small")), SMALL)


@pytest.fixture(scope="module")
def large_annotations(tmp_path_factory) -> tuple[str, list]:
    """3,000 images without JPEGs (ids reach past 1722, so two corrupted ids are listed)."""
    options = SynthVGOptions(num_images=3000, seed=11)
    folder = write_synthvg(str(tmp_path_factory.mktemp("large")), options, annotations_only=True)
    return folder, generate_images(options)


# ------------------------------------------------------------------------------------------ reproducibility
def test_same_seed_gives_byte_identical_files(tmp_path, small_dataset):
    again = write_synthvg(str(tmp_path / "again"), SMALL, workers=2)
    first, second = _files(small_dataset), _files(again)
    assert sorted(first) == sorted(second)
    assert len([name for name in first if name.endswith(".jpg")]) == SMALL.num_images
    for name in first:
        assert first[name] == second[name], f"{name} differs between two runs with the same seed"
    other = write_synthvg(str(tmp_path / "other"), SynthVGOptions(num_images=40, seed=4, image_size=96),
                          annotations_only=True)
    assert _files(other)["VG-SGG-with-attri.h5"] != first["VG-SGG-with-attri.h5"]


# -------------------------------------------------------------------------------------------------- format
def test_h5_dicts_and_image_data_follow_vg150(large_annotations):
    folder, images = large_annotations
    with h5py.File(os.path.join(folder, "VG-SGG-with-attri.h5"), "r") as handle:
        data = {name: handle[name][:] for name in handle}
    expected = {
        "split": (np.int32, 1), "img_to_first_box": (np.int32, 1), "img_to_last_box": (np.int32, 1),
        "img_to_first_rel": (np.int32, 1), "img_to_last_rel": (np.int32, 1), "labels": (np.int64, 2),
        "boxes_1024": (np.int32, 2), "boxes_512": (np.int32, 2), "active_object_mask": (np.bool_, 2),
        "relationships": (np.int32, 2), "predicates": (np.int64, 2), "attributes": (np.int64, 2),
    }
    assert set(data) == set(expected)
    for name, (dtype, ndim) in expected.items():
        assert data[name].dtype == dtype and data[name].ndim == ndim, name
    num_boxes, num_rels = len(data["labels"]), len(data["predicates"])
    assert data["boxes_1024"].shape == (num_boxes, 4) and data["attributes"].shape == (num_boxes, 10)
    assert data["relationships"].shape == (num_rels, 2) and data["split"].shape == (3000,)
    assert set(np.unique(data["split"])) == {0, 2}
    assert abs(np.mean(data["split"] == 2) - 0.3) < 1e-3
    assert data["labels"].min() >= 1 and data["labels"].max() <= len(OBJECT_CLASSES)
    assert data["predicates"].min() >= 1 and data["predicates"].max() <= len(PREDICATES)
    assert data["attributes"].max() <= len(ATTRIBUTES) and (data["attributes"][:, 0] > 0).all()
    for frame in ("boxes_1024", "boxes_512"):
        assert (data[frame][:, :2] >= 0).all() and (data[frame][:, 2:] > 0).all()

    first_box, last_box = data["img_to_first_box"], data["img_to_last_box"]
    first_rel, last_rel = data["img_to_first_rel"], data["img_to_last_rel"]
    for code in (0, 2):  # each split has images without boxes and images with boxes but no relation
        in_split = data["split"] == code
        assert ((first_box == -1) & (last_box == -1) & in_split).any()
        assert ((first_box >= 0) & (first_rel == -1) & in_split).any()
    has_rel = np.flatnonzero(first_rel >= 0)
    rel_image = np.repeat(has_rel, last_rel[has_rel] - first_rel[has_rel] + 1)
    assert np.array_equal(np.concatenate([np.arange(first_rel[i], last_rel[i] + 1) for i in has_rel]),
                          np.arange(num_rels))
    assert (data["relationships"] >= first_box[rel_image, None]).all()
    assert (data["relationships"] <= last_box[rel_image, None]).all()
    assert (data["relationships"][:, 0] != data["relationships"][:, 1]).all()
    pair_keys = rel_image * num_boxes ** 2 + data["relationships"][:, 0] * num_boxes + data["relationships"][:, 1]
    assert len(np.unique(pair_keys)) < num_rels, "no duplicate (subject, object) pair for the loader to filter"

    with open(os.path.join(folder, "VG-SGG-dicts-with-attri.json"), encoding="utf-8") as handle:
        dicts = json.load(handle)
    assert list(dicts["label_to_idx"]) == sorted(OBJECT_CLASSES)
    assert dicts["predicate_to_idx"] == {name: i + 1 for i, name in enumerate(sorted(PREDICATES))}
    assert dicts["idx_to_predicate"]["1"] == "above" and dicts["predicate_to_idx"]["sitting on"] > 0
    assert dicts["idx_to_label"] == {str(i): name for name, i in dicts["label_to_idx"].items()}
    predicate_counts = np.bincount(data["predicates"][:, 0], minlength=len(PREDICATES) + 1)
    assert dicts["predicate_count"] == {name: int(predicate_counts[i]) for name, i in dicts["predicate_to_idx"].items()}
    label_counts = np.bincount(data["labels"][:, 0], minlength=len(OBJECT_CLASSES) + 1)
    assert dicts["object_count"] == {name: int(label_counts[i]) for name, i in dicts["label_to_idx"].items()}
    assert sum(dicts["attribute_count"].values()) == int((data["attributes"] > 0).sum())

    with open(os.path.join(folder, "image_data.json"), encoding="utf-8") as handle:
        entries = json.load(handle)
    assert [entry["image_id"] for entry in entries] == list(range(1, 3003))  # 3000 rows + ids 1592 and 1722
    aligned = [entry for entry in entries if entry["image_id"] not in (1592, 1722)]
    assert [entry["image_id"] for entry in aligned] == [image.image_id for image in images]
    assert [(e["width"], e["height"]) for e in aligned] == [(image.width, image.height) for image in images]
    assert set(entries[0]) == {"width", "height", "image_id", "url", "coco_id", "flickr_id"}
    widths, heights = np.array([e["width"] for e in entries]), np.array([e["height"] for e in entries])
    assert (widths > heights).any() and (heights > widths).any()
    assert 150 <= np.maximum(widths, heights).min() and np.maximum(widths, heights).max() <= 256


def test_corrupted_ids_are_skipped_like_vg():
    ids, skipped = image_ids(4613)
    assert skipped == [1592, 1722] and ids[-1] == 4615 and len(ids) == 4613
    ids, skipped = image_ids(4614)
    assert skipped == [1592, 1722, 4616, 4617] and ids[-1] == 4618


def test_box_encoding_survives_sgb_truncating_decode():
    boxes = np.array([[0, 0, 1, 1], [10, 20, 13, 27], [5, 6, 1024, 800], [7, 7, 8, 9]])
    assert np.array_equal(cxcywh_to_xyxy_truncated(xyxy_to_vg_cxcywh(boxes)), boxes)


# -------------------------------------------------------------------------------------------- round trip
def test_round_trip_through_the_loader(small_dataset):
    records = {image.image_id: image for image in generate_images(SMALL)}
    with_relations = {i for i, image in records.items() if len(image.annotation.relations) > 0}
    seen = []
    for split in ("train", "val", "test"):
        dataset = VGDataset(split, **_paths(small_dataset), num_val_im=5)
        assert dataset.ind_to_predicates == ["__background__"] + sorted(PREDICATES)
        for index in range(len(dataset)):
            info = dataset.get_img_info(index)
            record = records[info["image_id"]]
            seen.append(info["image_id"])
            assert (record.split == 2) == (split == "test")
            assert (info["width"], info["height"]) == (record.width, record.height)
            image, _, _ = dataset[index]
            assert image.shape == (record.height, record.width, 3)
            target = dataset.get_groundtruth(index, evaluation=True)
            assert torch.equal(target["labels"], torch.from_numpy(record.labels))
            assert torch.equal(target["attributes"], torch.from_numpy(record.attributes))
            expected_boxes = record.boxes.copy()
            expected_boxes[:, 0::2] = expected_boxes[:, 0::2].clip(0, record.width - 1)
            expected_boxes[:, 1::2] = expected_boxes[:, 1::2].clip(0, record.height - 1)
            tolerance = max(record.width, record.height) / 1024 + 1e-4  # one step of the 1024 frame
            assert np.abs(target["boxes"].numpy() - expected_boxes).max() <= tolerance
            relations = target["relation_tuple"].numpy()
            if split == "train":  # duplicate pairs were reduced to one of their predicates
                written = {tuple(row) for row in record.annotation.relations}
                assert {tuple(row) for row in relations} <= written
                assert len(relations) == len({(s, o) for s, o, _ in written})
            else:
                assert np.array_equal(relations, record.annotation.relations)
    assert sorted(seen) == sorted(with_relations)


def test_glove_file_serves_the_loader(small_dataset, tmp_path):
    glove_dir = str(tmp_path)  # a copy, so the loader's cache file does not land in the shared fixture
    shutil.copy(os.path.join(small_dataset, "glove.6B.200d.txt"), glove_dir)
    words, vectors = parse_glove_text(os.path.join(glove_dir, "glove.6B.200d.txt"), 200)
    row = {word: i for i, word in enumerate(words)}
    for name in OBJECT_CLASSES + PREDICATES + ATTRIBUTES:
        assert all(word in row for word in name.split(" ")), name
    names = ["__background__", "man", "sitting on", "in front of"]
    embedded = embedding_for_names(names, glove_dir, 200, generator=torch.Generator().manual_seed(0))
    assert torch.equal(embedded[1], vectors[row["man"]])
    assert torch.equal(embedded[2], vectors[row["sitting"]])
    assert torch.equal(embedded[3], vectors[row["front"]])

    def cosine(a: str, b: str) -> float:
        return float(torch.nn.functional.cosine_similarity(vectors[row[a]], vectors[row[b]], dim=0))

    assert cosine("man", "woman") > cosine("man", "cup") + 0.3
    assert cosine("chair", "bench") > cosine("chair", "horse") + 0.3


# ------------------------------------------------------------------------------------------ relation rules
def _scene(*objects: tuple) -> Scene:
    built = [SceneObject(name=name, box=np.array(box, float), depth=depth, colour="red", pose=pose)
             for name, box, depth, pose in objects]
    return Scene(width=200, height=200, horizon=60.0, ground="floor", objects=built)


def _true(scene: Scene) -> dict[tuple[int, int], set[str]]:
    truth = true_relations(scene)
    pairs: dict[tuple[int, int], set[str]] = {}
    for name, matrix in truth.items():
        for s, o in zip(*np.nonzero(matrix)):
            pairs.setdefault((int(s), int(o)), set()).add(name)
    return pairs


def test_contact_relations_follow_pose_and_class():
    # chair 60..160 tall (seat band 100..130); the man's hip is at 40 + 0.6 * 100 = 100.
    truth = _true(_scene(("chair", (50, 60, 90, 160), 160, ""), ("man", (45, 40, 95, 140), 160.1, "sitting"),
                         ("hat", (58, 32, 82, 46), 160.2, ""), ("grass", (0, 60, 200, 200), 0, ""),
                         ("dog", (120, 140, 170, 170), 170, "walking")))
    assert truth[(1, 0)] == {"sitting on", "on"}
    assert truth[(1, 2)] == {"wearing", "has"}
    assert truth[(0, 3)] == {"on"}                       # furniture on the ground has no informative form
    assert truth[(4, 3)] == {"walking on", "on"}
    assert (1, 3) not in truth                           # the sitter rests on the chair, not on the grass
    assert (2, 1) not in truth and (3, 0) not in truth   # converse directions hold nothing
    # saddle band 105..130; the rider's hip is at 70 + 0.55 * 80 = 114
    riding = _true(_scene(("horse", (20, 80, 120, 180), 180, "walking"), ("woman", (50, 70, 90, 150), 180.1, "riding")))
    assert riding == {(1, 0): {"riding", "on"}}


def test_part_depth_and_distance_relations():
    truth = _true(_scene(("building", (0, 0, 100, 70), 0.5, ""), ("window", (10, 10, 30, 30), 0.6, ""),
                         ("man", (40, 50, 60, 120), 120, "standing"), ("woman", (50, 52, 70, 121), 121, "standing"),
                         ("child", (90, 80, 105, 120), 120.5, "standing"), ("bird", (40, 20, 60, 30), 1000, "flying")))
    assert truth[(1, 0)] == {"part of", "of"} and truth[(0, 1)] == {"has"}
    assert truth[(3, 2)] == {"in front of"} and truth[(2, 3)] == {"behind"}   # drawn later = in front
    assert truth[(2, 0)] == {"in front of"}
    assert truth[(4, 3)] == {"near"} and truth[(3, 4)] == {"near"}             # gap 20 <= 0.3 * 69
    assert "near" not in truth.get((4, 2), set())                             # gap 30 > 0.3 * 70
    assert truth[(5, 2)] == {"above"} and truth[(2, 5)] == {"under"}
    assert (1, 2) not in truth                                                # building parts: no geometry
    table = _true(_scene(("table", (0, 100, 100, 150), 150, ""), ("cup", (20, 90, 30, 102), 150.1, ""),
                         ("dog", (30, 125, 70, 148), 150.05, "standing")))
    assert table[(1, 0)] == {"on"} and table[(2, 0)] == {"under"} and table[(0, 2)] == {"above"}


# ----------------------------------------------------------------------------------- promised statistics
def test_long_tail_and_annotation_bias_match_the_promises(large_annotations):
    folder, images = large_annotations
    with h5py.File(os.path.join(folder, "VG-SGG-with-attri.h5"), "r") as handle:
        written = handle["predicates"][:, 0]
    assert np.array_equal(written, np.concatenate([image.annotation.relations[:, 2] for image in images]))

    counts = np.bincount(written, minlength=len(PREDICATES) + 1)[1:]
    assert counts.min() > 0
    assert counts.max() / counts.min() >= HEAD_TO_TAIL_MIN_RATIO
    assert ID_TO_PREDICATE[int(np.argmax(counts)) + 1] == "on"

    primary_true = np.concatenate([image.annotation.true_predicates[~image.annotation.duplicates] for image in images])
    primary_written = np.concatenate([image.annotation.relations[~image.annotation.duplicates, 2] for image in images])
    informative = np.isin(primary_true, [PREDICATE_TO_ID[name] for name in GENERAL_OF_INFORMATIVE])
    general_of = {PREDICATE_TO_ID[k]: PREDICATE_TO_ID[v] for k, v in GENERAL_OF_INFORMATIVE.items()}
    as_general = primary_written[informative] == np.vectorize(general_of.get)(primary_true[informative])
    assert informative.sum() > 1000
    assert as_general.mean() == pytest.approx(GENERAL_FOR_INFORMATIVE_RATE, abs=0.04)
    assert (primary_written[~informative] == primary_true[~informative]).all()

    candidates = sum(image.annotation.num_candidates for image in images)
    assert len(primary_true) / candidates == pytest.approx(ANNOTATION_KEEP_RATE, abs=0.03)
    duplicates = sum(int(image.annotation.duplicates.sum()) for image in images)
    assert 0 < duplicates / len(primary_true) < DUPLICATE_RELATION_RATE


# ------------------------------------------------------------------------------------ writing and safety
def test_refuses_to_overwrite_and_never_leaves_half_a_dataset(tmp_path, monkeypatch):
    options = SynthVGOptions(num_images=5, seed=1, image_size=64)
    folder = write_synthvg(str(tmp_path), options, annotations_only=True)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_synthvg(str(tmp_path), options, annotations_only=True)
    write_synthvg(str(tmp_path), SynthVGOptions(num_images=6, seed=1, image_size=64), annotations_only=True,
                  overwrite=True)
    with open(os.path.join(folder, "image_data.json"), encoding="utf-8") as handle:
        assert len(json.load(handle)) == 6

    def broken_renderer(*args, **kwargs):
        raise RuntimeError("killed while rendering")

    monkeypatch.setattr(synthetic, "render_images", broken_renderer)
    with pytest.raises(RuntimeError, match="killed"):
        write_synthvg(str(tmp_path), options, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["vg"]                    # no staging folder left behind
    with open(os.path.join(folder, "image_data.json"), encoding="utf-8") as handle:
        assert len(json.load(handle)) == 6                           # the previous dataset is intact

    foreign = tmp_path / "real" / "vg"
    foreign.mkdir(parents=True)
    (foreign / "VG-SGG-with-attri.h5").write_bytes(b"real data")
    with pytest.raises(FileExistsError, match=MARKER_FILE_NAME):
        write_synthvg(str(tmp_path / "real"), options, annotations_only=True, overwrite=True)
    assert (foreign / "VG-SGG-with-attri.h5").read_bytes() == b"real data"


def test_vg_scale_arrays_have_vg150_sizes():
    uniform = lambda k: np.full(k, 1.0 / k)  # noqa: E731
    arrays, corrupted = vg_scale_arrays(0, 0.3, uniform(len(OBJECT_CLASSES)), uniform(len(PREDICATES)),
                                        uniform(len(ATTRIBUTES)))
    assert arrays.split.size == VG_SCALE_IMAGES == 108_073
    assert sorted(corrupted) == [1592, 1722, 4616, 4617] and arrays.image_ids[-1] == 108_077
    assert arrays.labels.size == pytest.approx(1_145_398, rel=0.01)
    assert arrays.predicates.size == pytest.approx(622_705, rel=0.01)
    has_box = arrays.first_box >= 0
    assert np.array_equal(arrays.first_box[has_box][1:], arrays.last_box[has_box][:-1] + 1)
    has_rel = np.flatnonzero(arrays.first_rel >= 0)
    rel_image = np.repeat(has_rel, arrays.last_rel[has_rel] - arrays.first_rel[has_rel] + 1)
    assert (arrays.relationships >= arrays.first_box[rel_image, None]).all()
    assert (arrays.relationships <= arrays.last_box[rel_image, None]).all()
    assert (arrays.relationships[:, 0] != arrays.relationships[:, 1]).all()
    assert (arrays.boxes_1024_xyxy[:, :2] >= 0).all() and (arrays.boxes_1024_xyxy[:, 2:] <= 1024).all()


def test_cli_rejects_inconsistent_options(capsys):
    parse_args = load_tool("make_synthetic_vg").parse_args

    with pytest.raises(SystemExit):
        parse_args(["--vg-scale"])
    with pytest.raises(SystemExit):
        parse_args(["--vg-scale", "--annotations-only", "--num-images", "10"])
    assert parse_args(["--vg-scale", "--annotations-only"]).vg_scale


def test_an_output_dir_that_cannot_be_made_is_one_error_line_and_exit_code_2(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = subprocess.run([sys.executable, "tools/make_synthetic_vg.py", "--output-dir", str(blocker / "synthvg"),
                             "--num-images", "4", "--annotations-only"],
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: writing SynthVG to {blocker / 'synthvg'}: "), result.stderr

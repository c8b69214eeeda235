"""SynthVG in PySGG's Open Images V6 layout: the same scenes as the VG150-format SynthVG, reproducible bytes,
and a few-iteration stage 1 -> test through the real entry points."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from relation_testing import ROOT, TINY_RELATION_OPTS, mode_opts
from tool_loading import load_tool
from rebalance_hca.data import OIDataset, VGDataset, dataset_paths
from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg_oi
from rebalance_hca.data.synthvg.oi_scale import oi_scale_split

OI_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN_oiv6.yaml")
OPTIONS = SynthVGOptions(num_images=60, seed=0)


@pytest.fixture(scope="module")
def tiny_synthvg_oi(tmp_path_factory) -> str:
    """The scenes of ``tiny_synthvg`` (60 images, seed 0) in the Open Images layout, val = 10 images."""
    root = str(tmp_path_factory.mktemp("tiny_synthvg_oi"))
    write_synthvg_oi(root, OPTIONS, num_val_images=10)
    return root


def _oi(root: str, split: str) -> OIDataset:
    paths = dataset_paths(f"openimage_v6_{split}", root)
    return OIDataset(split, paths.img_dir, paths.ann_file, paths.dict_file, filter_duplicate_rels=False)


def test_same_scenes_as_the_vg150_format(tiny_synthvg, tiny_synthvg_oi):
    paths = dataset_paths("VG_stanford_filtered_with_attribute_test", tiny_synthvg)
    vg = VGDataset("test", paths.img_dir, paths.roidb_file, paths.dict_file, paths.image_file, num_val_im=0)
    oi = _oi(tiny_synthvg_oi, "test")
    assert oi.ind_to_classes == vg.ind_to_classes and oi.ind_to_predicates == vg.ind_to_predicates
    assert len(oi) == len(vg)
    np.testing.assert_array_equal(oi.widths, vg.widths)
    np.testing.assert_array_equal(oi.relation_triplets(), vg.relation_triplets())
    for index in range(len(oi)):
        oi_target, vg_target = oi.get_groundtruth(index, True), vg.get_groundtruth(index, True)
        assert oi.file_name(index) == f"{vg.image_id(index):016x}.jpg"
        assert os.path.isfile(oi.image_path(index))
        assert oi_target["relation_tuple"].tolist() == vg_target["relation_tuple"].tolist()
        # Integer pixels here, the 1024 frame there: the boxes agree to the frame's rounding.
        np.testing.assert_allclose(oi_target["boxes"], vg_target["boxes"], atol=1.0)


def test_val_and_train_split_the_train_pool_and_bytes_are_reproducible(tiny_synthvg_oi, tmp_path):
    annotations = os.path.join(tiny_synthvg_oi, "openimages", "open_image_v6", "annotations")
    records = {split: json.load(open(os.path.join(annotations, f"vrd-{split}-anno.json")))
               for split in ("train", "val", "test")}
    assert len(records["val"]) == 10
    names = [record["img_fn"] for split in ("val", "train") for record in records[split]]
    assert names == sorted(names) and not set(names) & {record["img_fn"] for record in records["test"]}
    assert all(record["bbox"] for split in records for record in records[split])
    again = write_synthvg_oi(str(tmp_path), OPTIONS, num_val_images=10, annotations_only=True)
    for split in ("train", "val", "test"):
        with open(os.path.join(again, "annotations", f"vrd-{split}-anno.json"), "rb") as stream:
            assert stream.read() == open(os.path.join(annotations, f"vrd-{split}-anno.json"), "rb").read()


@pytest.mark.slow
def test_stage1_then_test_through_the_entry_points(tiny_synthvg_oi, tmp_path):
    train, test = load_tool("relation_train_net"), load_tool("relation_test_net")
    output = str(tmp_path / "stage1")
    args = ["--config-file", OI_CONFIG, *TINY_RELATION_OPTS, *mode_opts("predcls"),
            "DATASETS.DATA_DIR", tiny_synthvg_oi,
            "GLOVE_DIR", os.path.join(tiny_synthvg_oi, "openimages", "open_image_v6"), "OUTPUT_DIR", output,
            "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.VAL_PERIOD", "2",
            "SOLVER.WARMUP_ITERS", "1", "TEST.IMS_PER_BATCH", "2"]
    train.main([*args, "--skip-test"])
    assert os.path.isfile(os.path.join(output, "openimage_v6_train_statistics.cache"))
    evaluation = test.main(args)
    assert evaluation["protocol"] == "oi"
    assert 0.0 <= evaluation["oi"]["R@50"] <= 1.0 and 0.0 <= evaluation["oi"]["score_wtd"] <= 1.0
    folder = os.path.join(output, "inference", "openimage_v6_test")
    assert {"predictions.npz", "test_report.txt", "test_results.json", "test_per_predicate_ap.png"} <= set(
        os.listdir(folder))
    with open(os.path.join(folder, "test_report.txt")) as report:
        text = report.read()
    assert "weighted rel mAP" in text and "weighted final_score" in text and "mR @ 50" in text


def test_oi_scale_split_is_well_formed():
    rng = np.random.default_rng(0)
    split = oi_scale_split(rng, 500, first_id=7, used_classes=np.array([3, 9, 601]))
    assert [split.file_names[0], split.file_names[-1]] == [f"{7:016x}.jpg", f"{506:016x}.jpg"]
    assert len(split.boxes) == split.box_counts.sum() and len(split.relations) == split.rel_counts.sum()
    assert (split.box_counts >= 2).all() and (split.rel_counts >= 1).all()
    image_boxes = np.repeat(split.box_counts, split.rel_counts)
    assert (split.relations[:, :2] < image_boxes[:, None]).all()
    assert (split.relations[:, 0] != split.relations[:, 1]).all()
    assert set(np.unique(split.labels)) <= {3, 9, 601} and split.relations[:, 2].min() >= 1
    box_image = np.repeat(np.arange(500), split.box_counts)
    assert (split.boxes[:, 2] > split.boxes[:, 0]).all() and (split.boxes[:, 2] <= split.widths[box_image]).all()
    assert (split.boxes[:, 3] <= split.heights[box_image]).all() and (split.boxes[:, :2] >= 0).all()


@pytest.mark.parametrize("argv, message", [
    (["--format", "oiv6", "--oi-scale"], "--oi-scale writes annotations only"),
    (["--oi-scale", "--annotations-only"], "--oi-scale needs --format oiv6"),
    (["--format", "oiv6", "--oi-scale", "--annotations-only", "--num-images", "5"], "--oi-scale fixes the size"),
])
def test_make_synthetic_vg_refuses_inconsistent_oi_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        load_tool("make_synthetic_vg").parse_args(argv)
    assert message in capsys.readouterr().err

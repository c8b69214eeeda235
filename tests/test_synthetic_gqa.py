"""SynthVG in SHA-GCL's GQA-200 layout (tools/make_synthetic_vg.py --format gqa200): the same scenes as the VG150
format, loaded through the GQA-200 family, and a stage-1 run plus test through the entry points."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from relation_testing import ROOT, TINY_RELATION_OPTS, mode_opts
from tool_loading import load_tool
from rebalance_hca.data import GQADataset, VGDataset, dataset_paths
from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg_gqa
from rebalance_hca.data.synthvg.gqa_scale import GQA_NUM_PREDICATES, gqa_scale_splits

GQA_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN_gqa200.yaml")
OPTIONS = SynthVGOptions(num_images=60, seed=0)


@pytest.fixture(scope="module")
def tiny_synthvg_gqa(tmp_path_factory) -> str:
    """The scenes of ``tiny_synthvg`` (60 images, seed 0) in the GQA-200 layout."""
    root = str(tmp_path_factory.mktemp("tiny_synthvg_gqa"))
    write_synthvg_gqa(root, OPTIONS)
    return root


def _gqa(root: str, split: str, **options) -> GQADataset:
    paths = dataset_paths(f"GQA_200_{split}", root)
    return GQADataset(split, paths.img_dir, paths.dict_file, paths.train_file, paths.test_file, **options)


def test_same_scenes_as_the_vg150_format(tiny_synthvg, tiny_synthvg_gqa):
    paths = dataset_paths("VG_stanford_filtered_with_attribute_test", tiny_synthvg)
    vg = VGDataset("test", paths.img_dir, paths.roidb_file, paths.dict_file, paths.image_file, num_val_im=0)
    gqa = _gqa(tiny_synthvg_gqa, "test")
    assert gqa.ind_to_classes == vg.ind_to_classes and gqa.ind_to_predicates == vg.ind_to_predicates
    assert len(gqa) == len(vg)
    np.testing.assert_array_equal(gqa.widths, vg.widths)
    np.testing.assert_array_equal(gqa.relation_triplets(), vg.relation_triplets())
    for index in range(len(gqa)):
        gqa_target, vg_target = gqa.get_groundtruth(index, True), vg.get_groundtruth(index, True)
        assert gqa.file_name(index) == f"{vg.image_id(index)}.jpg" and os.path.isfile(gqa.image_path(index))
        assert gqa_target["relation_tuple"].tolist() == vg_target["relation_tuple"].tolist()
        # Integer pixels here, the 1024 frame there: the boxes agree to the frame's rounding.
        np.testing.assert_allclose(gqa_target["boxes"], vg_target["boxes"], atol=1.0)
    assert [_gqa(tiny_synthvg_gqa, "val", num_val_im=5).image_id(i) for i in range(5)] == \
        [gqa.image_id(i) for i in range(5)]


def test_train_file_is_the_whole_train_pool_and_bytes_are_reproducible(tiny_synthvg, tiny_synthvg_gqa, tmp_path):
    folder = os.path.join(tiny_synthvg_gqa, "gqa")
    with open(os.path.join(folder, "GQA_200_Train.json")) as handle:
        train = json.load(handle)
    paths = dataset_paths("VG_stanford_filtered_with_attribute_train", tiny_synthvg)
    pool = VGDataset("train", paths.img_dir, paths.roidb_file, paths.dict_file, paths.image_file, num_val_im=0)
    # the file lists every train-pool image (some without boxes or relations); the loader keeps the usable ones
    assert len(train["filenames_all"]) > len(_gqa(tiny_synthvg_gqa, "train")) == len(pool)
    again = write_synthvg_gqa(str(tmp_path), OPTIONS, annotations_only=True)
    for name in ("GQA_200_ID_Info.json", "GQA_200_Train.json", "GQA_200_Test.json"):
        with open(os.path.join(again, name), "rb") as stream:
            assert stream.read() == open(os.path.join(folder, name), "rb").read()


@pytest.mark.slow
def test_stage1_then_test_through_the_entry_points(tiny_synthvg_gqa, tmp_path):
    train, test = load_tool("relation_train_net"), load_tool("relation_test_net")
    output = str(tmp_path / "stage1")
    args = ["--config-file", GQA_CONFIG, *TINY_RELATION_OPTS, *mode_opts("predcls"),
            "DATASETS.DATA_DIR", tiny_synthvg_gqa, "DATASETS.NUM_VAL_IM", "4",
            "GLOVE_DIR", os.path.join(tiny_synthvg_gqa, "gqa"), "OUTPUT_DIR", output,
            "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.VAL_PERIOD", "2",
            "SOLVER.WARMUP_ITERS", "1", "TEST.IMS_PER_BATCH", "2"]
    train.main([*args, "--skip-test"])
    assert os.path.isfile(os.path.join(output, "GQA_200_train_statistics.cache"))
    evaluation = test.main(args)
    assert 0.0 <= evaluation["sgg"]["R@100"] <= 1.0 and 0.0 <= evaluation["sgg"]["mR@100"] <= 1.0
    assert not np.isnan(evaluation["sgg"]["mR_tail@100"])  # head/body/tail from the GQA train counts
    assert os.path.isfile(os.path.join(output, "inference", "GQA_200_test", "test_report.txt"))


def test_gqa_scale_splits_are_well_formed():
    splits = gqa_scale_splits(0)
    assert {name: len(split.file_names) for name, split in splits.items()} == {"train": 60_000, "test": 11_000}
    train = splits["train"]
    assert len(train.boxes) == train.box_counts.sum() and train.relations[:, 2].max() <= GQA_NUM_PREDICATES
    assert 4.9 < train.rel_counts.mean() < 5.5 and 10.5 < train.box_counts.mean() < 11.5


@pytest.mark.parametrize("argv, message", [
    (["--format", "gqa200", "--gqa-scale"], "--gqa-scale writes annotations only"),
    (["--gqa-scale", "--annotations-only"], "--gqa-scale needs --format gqa200"),
])
def test_make_synthetic_vg_refuses_inconsistent_gqa_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        load_tool("make_synthetic_vg").parse_args(argv)
    assert message in capsys.readouterr().err

"""The scene-graph JSON format (docs/data.md#scene-graph-json): the example folder loads, VG150 -> JSON ->
loaded dataset gives the same samples and statistics, and bad files give one line naming file, record and field."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from relation_testing import ROOT, TINY_RELATION_OPTS, mode_opts
from tool_loading import load_tool
from rebalance_hca.config import load_config
from rebalance_hca.data import DataFormatError, build_dataset, dataset_paths, family_of, get_dataset_statistics
from rebalance_hca.data.build import rebalance_spec
from rebalance_hca.data.scene_graph_json import JSONSceneGraphDataset, SceneGraphJSONFamily
from rebalance_hca.data.scene_graph_json.checks import json_dataset_problems

EXAMPLE = os.path.join(ROOT, "docs", "examples", "scene_graph_json")
VG_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN.yaml")
VG_OPTS = ["MODEL.RELATION_ON", "True", "DATASETS.NUM_VAL_IM", "4"]


def json_opts(folder: str) -> list[str]:
    return [token for mode in ("train", "val", "test")
            for token in (f"DATASETS.{mode.upper()}", f"('json:{folder}:{mode}',)")]


def _load(folder: str, split: str, **options) -> JSONSceneGraphDataset:
    paths = dataset_paths(f"json:{folder}:{split}")
    return JSONSceneGraphDataset(split, paths.img_dir, paths.vocabulary_file, paths.split_file, **options)


def test_example_folder_loads_with_background_added():
    train = _load(EXAMPLE, "train")
    assert isinstance(family_of(f"json:{EXAMPLE}:train"), SceneGraphJSONFamily)
    assert train.ind_to_classes == ["__background__", "person", "horse", "hat"]
    assert train.ind_to_predicates == ["__background__", "riding", "wearing", "near"]
    target = train.get_groundtruth(0, evaluation=True)
    assert target["labels"].tolist() == [1, 2, 3]
    assert target["boxes"][0].tolist() == [20.0, 4.0, 36.0, 30.0]
    assert target["relation_tuple"].tolist() == [[0, 1, 1], [0, 2, 2]]
    assert train.get_img_info(1) == {"width": 64, "height": 48, "image_id": 1, "file_name": "field.jpg"}
    image, _, _ = train[0]
    assert image.shape == (48, 64, 3)
    assert len(_load(EXAMPLE, "val")) == len(_load(EXAMPLE, "test")) == 1


def test_unknown_name_form_is_explained():
    with pytest.raises(ValueError, match=r"json:<folder>:<split>"):
        dataset_paths("json:some_folder")


@pytest.fixture(scope="module")
def converted_synthvg(tiny_synthvg, tmp_path_factory) -> str:
    """tiny_synthvg's VG150 splits (val = the first 4 train-pool images) written by tools/convert_dataset.py."""
    folder = str(tmp_path_factory.mktemp("converted") / "synthvg_json")
    load_tool("convert_dataset").main(["--config-file", VG_CONFIG, "--output", folder,
                                       "DATASETS.DATA_DIR", tiny_synthvg, *VG_OPTS])
    return folder


def test_vg150_round_trip_gives_identical_samples_and_statistics(tiny_synthvg, converted_synthvg, tmp_path):
    vg_opts = ["DATASETS.DATA_DIR", tiny_synthvg, *VG_OPTS, "DATASETS.FILTER_DUPLICATE_RELS", "False"]
    vg_cfg = load_config(VG_CONFIG, vg_opts + ["OUTPUT_DIR", str(tmp_path / "vg")])
    json_cfg = load_config(VG_CONFIG, vg_opts + json_opts(converted_synthvg) + ["OUTPUT_DIR", str(tmp_path / "json")])
    for mode in ("train", "val", "test"):
        vg, loaded = build_dataset(vg_cfg, mode, with_transforms=False), build_dataset(json_cfg, mode, False)
        assert len(vg) == len(loaded) > 0
        assert loaded.ind_to_classes == vg.ind_to_classes and loaded.ind_to_predicates == vg.ind_to_predicates
        for index in range(len(vg)):
            expected, got = vg.get_groundtruth(index, True), loaded.get_groundtruth(index, True)
            for key in ("boxes", "labels", "relation_tuple"):
                assert got[key].dtype == expected[key].dtype and got[key].equal(expected[key]), (mode, index, key)
            assert loaded.image_path(index) != vg.image_path(index)
            assert os.path.realpath(loaded.image_path(index)) == os.path.realpath(vg.image_path(index))
    expected, got = get_dataset_statistics(vg_cfg), get_dataset_statistics(json_cfg)
    for key in ("fg_matrix", "bg_matrix", "pred_dist"):
        np.testing.assert_array_equal(getattr(got, key), getattr(expected, key))


def test_stage2_rebalanced_split_caps_the_most_frequent_predicates(converted_synthvg):
    cfg = load_config(VG_CONFIG, json_opts(converted_synthvg) + [
        "MODEL.ROI_RELATION_HEAD.REBALANCE.TOP_K_PREDICATES", "2", "MODEL.ROI_RELATION_HEAD.REBALANCE.MAX_INSTANCES",
        "3"])
    spec = rebalance_spec(cfg)
    full = build_dataset(cfg, "train", with_transforms=False, rebalance=False)
    counts = np.bincount(full.index.relations[:, 2], minlength=len(full.ind_to_predicates))
    assert list(spec.predicate_order[:2]) == list(np.argsort(-counts[1:], kind="stable")[:2] + 1)
    rebalanced = build_dataset(cfg, "train", with_transforms=False, rebalance=True)
    after = np.bincount(rebalanced.index.relations[:, 2], minlength=len(full.ind_to_predicates))
    for predicate in spec.predicate_order[:2]:
        assert after[predicate] == min(3, counts[predicate])
    for predicate in spec.predicate_order[2:]:
        assert after[predicate] == counts[predicate]


def _write_example_copy(tmp_path, split_content=None, vocabulary=None) -> str:
    folder = str(tmp_path / "data")
    shutil.copytree(EXAMPLE, folder)
    if split_content is not None:
        with open(os.path.join(folder, "train.json"), "w") as handle:
            handle.write(split_content if isinstance(split_content, str) else json.dumps(split_content))
    if vocabulary is not None:
        with open(os.path.join(folder, "vocabulary.json"), "w") as handle:
            json.dump(vocabulary, handle)
    return folder


def _example_train() -> dict:
    with open(os.path.join(EXAMPLE, "train.json")) as handle:
        return json.load(handle)


def _broken(change) -> dict:
    content = _example_train()
    change(content)
    return content


BAD_SPLITS = {
    "truncated": (json.dumps(_example_train())[:-40], r"train\.json: not valid JSON"),
    "missing key": (_broken(lambda c: c["images"][1].pop("height")),
                    r"train\.json: image 1 is missing key\(s\) \['height'\]"),
    "wrong type": (_broken(lambda c: c["images"][0].update(width="64")),
                   r"train\.json: image 0 field 'width' must be a positive integer, got '64'"),
    "bad box": (_broken(lambda c: c["images"][0]["objects"][2].update(box=[1, 2, 3])),
                r"train\.json: image 0 object 2 field 'box' must be \[x1, y1, x2, y2\]"),
    "index out of range": (_broken(lambda c: c["images"][1]["relations"][1].update(object=2)),
                           r"train\.json: image 1 relation 1 field 'object' must be an object index in \[0, 2\), "
                           r"got 2"),
    "unknown class": (_broken(lambda c: c["images"][0]["objects"][1].update({"class": "zebra"})),
                      r"train\.json: image 0 object 1 field 'class': 'zebra' is not a name of .*vocabulary\.json "
                      r"field 'classes' \(3 names\)"),
    "unknown predicate": (_broken(lambda c: c["images"][1]["relations"][0].update(predicate="behind")),
                          r"train\.json: image 1 relation 0 field 'predicate': 'behind' is not a name"),
    "no images list": ({"records": []}, r"train\.json: expected a JSON object whose field 'images' is a list"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPLITS))
def test_bad_split_file_names_file_record_and_field(tmp_path, case):
    content, message = BAD_SPLITS[case]
    folder = _write_example_copy(tmp_path, split_content=content)
    with pytest.raises(DataFormatError, match=message):
        _load(folder, "train")


BAD_VOCABULARIES = {
    "missing key": ({"classes": ["person"]}, r"vocabulary\.json: missing key 'predicates'"),
    "background written": ({"classes": ["__background__", "person", "horse", "hat"], "predicates": ["riding"]},
                           r"vocabulary\.json: field 'classes' entry 0 must be a non-empty name other than "
                           r"'__background__'"),
    "repeated name": ({"classes": ["person", "horse", "hat", "horse"], "predicates": ["riding", "wearing", "near"]},
                      r"vocabulary\.json: field 'classes' repeats the name\(s\) \['horse'\]"),
    "too few predicates": ({"classes": ["person", "horse", "hat"], "predicates": ["riding", "wearing"]},
                           r"train\.json: image 1 relation 0 field 'predicate': 'near' is not a name of "
                           r".*vocabulary\.json field 'predicates' \(2 names\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_VOCABULARIES))
def test_bad_vocabulary_names_file_and_field(tmp_path, case):
    vocabulary, message = BAD_VOCABULARIES[case]
    folder = _write_example_copy(tmp_path, vocabulary=vocabulary)
    with pytest.raises(DataFormatError, match=message):
        _load(folder, "train")


def test_convert_tool_bad_input_is_one_line_and_writes_nothing(tmp_path):
    folder = _write_example_copy(tmp_path, split_content=BAD_SPLITS["index out of range"][0])
    output = tmp_path / "converted"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "convert_dataset.py"), "--output", str(output),
         *json_opts(folder)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "image 1 relation 1 field 'object'" in lines[0]
    assert os.listdir(tmp_path) == ["data"]


def test_checks_name_every_problem_with_file_index_and_field(tmp_path):
    assert json_dataset_problems(EXAMPLE) == []
    content = _example_train()
    first, second = content["images"]
    first["objects"][0]["box"] = [20, 4, 70, 30]  # beyond the 64-pixel width
    first["objects"][2]["box"] = [24, 2, 24, 8]  # zero width
    first["relations"][1]["object"] = 7
    first["objects"][1]["class"] = "zebra"
    second["relations"][0]["predicate"] = "behind"
    second["objects"].append(dict(second["objects"][1]))
    second["file"] = "absent.jpg"
    folder = _write_example_copy(tmp_path, split_content=content, vocabulary={
        "classes": ["person", "horse", "hat", "saddle"], "predicates": ["riding", "wearing", "near"]})
    with open(os.path.join(folder, "test.json")) as handle:
        test_content = json.load(handle)
    test_content["images"][0]["objects"][2]["class"] = "saddle"
    with open(os.path.join(folder, "test.json"), "w") as handle:
        json.dump(test_content, handle)
    train = os.path.join(folder, "train.json")
    problems = json_dataset_problems(folder)
    assert problems == [
        f"{train}: image 0 object 0 field 'box' [20, 4, 70, 30] lies outside the 64x48 image",
        f"{train}: image 0 object 1 field 'class': 'zebra' is not a name of the vocabulary",
        f"{train}: image 0 object 2 field 'box' has zero or negative area: [24, 2, 24, 8]",
        f"{train}: image 0 relation 1 field 'object': object 7 does not exist (the image has 3 objects)",
        f"{train}: image 1 field 'file': image not found: {os.path.join(folder, 'images', 'absent.jpg')}",
        f"{train}: image 1 object 2 duplicates object 1 (same class and box)",
        f"{train}: image 1 relation 0 field 'predicate': 'behind' is not a name of the vocabulary",
        f"{os.path.join(folder, 'test.json')}: image 0 object 2 field 'class': 'saddle' appears in test but never "
        f"in train",
    ]


def test_check_dataset_tool_lists_json_problems_and_exits_1(tmp_path):
    content = _example_train()
    content["images"][0]["relations"][0]["subject"] = 5
    folder = _write_example_copy(tmp_path, split_content=content)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "check_dataset.py"), *json_opts(folder)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().splitlines() == [
        f"problem: {os.path.join(folder, 'train.json')}: image 0 relation 0 field 'subject': object 5 does not "
        f"exist (the image has 3 objects)", "dataset check: 1 problem(s)"]


@pytest.mark.slow
def test_train_then_test_through_the_entry_points(tiny_synthvg, converted_synthvg, tmp_path):
    train, test = load_tool("relation_train_net"), load_tool("relation_test_net")
    output = str(tmp_path / "stage1")
    args = ["--config-file", VG_CONFIG, *TINY_RELATION_OPTS, *mode_opts("predcls"), *json_opts(converted_synthvg),
            "GLOVE_DIR", os.path.join(tiny_synthvg, "vg"), "OUTPUT_DIR", output,
            "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.VAL_PERIOD", "2",
            "SOLVER.WARMUP_ITERS", "1", "TEST.IMS_PER_BATCH", "2"]
    train.main([*args, "--skip-test"])
    assert os.path.isfile(os.path.join(output, f"json:{converted_synthvg}:train_statistics.cache"))
    evaluation = test.main(args)
    assert 0.0 <= evaluation["sgg"]["R@100"] <= 1.0 and 0.0 <= evaluation["sgg"]["mR@100"] <= 1.0

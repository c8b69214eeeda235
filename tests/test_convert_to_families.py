"""tools/convert_dataset.py --to vg150|oiv6|gqa200 (docs/data.md#converting-between-families): SynthVG in each
layout -> scene-graph JSON -> the layout again loads the same samples and statistics as the original; the example
JSON folder written in each layout loads the JSON loader's samples (VG150 within its documented rounding bound);
an unrepresentable sample or an existing output folder is refused and nothing is written."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from relation_testing import ROOT
from tool_loading import load_tool
from rebalance_hca.config import load_config
from rebalance_hca.data import build_dataset, get_dataset_statistics
from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg, write_synthvg_gqa, write_synthvg_oi
from rebalance_hca.data.vg.files import BOX_SCALE
from rebalance_hca.data.vg.writer import clamped_boxes, decoded_boxes, frame_boxes
from rebalance_hca.utils.cli import UserInputError

OPTIONS = SynthVGOptions(num_images=60, seed=0)
EXAMPLE = os.path.join(ROOT, "docs", "examples", "scene_graph_json")
CONFIGS = os.path.join(ROOT, "configs", "synthetic")
LAYOUTS = {
    # layout: (config naming the family's datasets, writer of SynthVG's annotation files, its settings)
    "vg150": (os.path.join(CONFIGS, "relation_HCA_R18_FPN.yaml"),
              lambda root: write_synthvg(root, OPTIONS, annotations_only=True), ["DATASETS.NUM_VAL_IM", "4"]),
    "oiv6": (os.path.join(CONFIGS, "relation_HCA_R18_FPN_oiv6.yaml"),
             lambda root: write_synthvg_oi(root, OPTIONS, num_val_images=10, annotations_only=True), []),
    "gqa200": (os.path.join(CONFIGS, "relation_HCA_R18_FPN_gqa200.yaml"),
               lambda root: write_synthvg_gqa(root, OPTIONS, annotations_only=True), ["DATASETS.NUM_VAL_IM", "4"]),
}
SAMPLE_OPTS = ["MODEL.RELATION_ON", "True", "DATASETS.FILTER_DUPLICATE_RELS", "False"]


def convert(config: str, output: str, to: str, opts: list[str], images: str = "none"):
    return load_tool("convert_dataset").main(["--config-file", config, "--output", output, "--to", to,
                                              "--images", images, *opts])


def json_opts(folder: str) -> list[str]:
    return [token for mode in ("train", "val", "test")
            for token in (f"DATASETS.{mode.upper()}", f"('json:{folder}:{mode}',)")]


def splits_of(cfg) -> dict:
    return {mode: build_dataset(cfg, mode, with_transforms=False) for mode in ("train", "val", "test")}


def assert_same_samples(expected, got, box_bound: float = 0.0, same_names: bool = True) -> None:
    """Evaluation-form samples of two datasets: sizes, names (or the same image files), labels and relation
    tuples equal; boxes equal (``box_bound`` 0) or within ``box_bound`` pixels."""
    assert len(got) == len(expected) > 0
    assert got.ind_to_classes == expected.ind_to_classes and got.ind_to_predicates == expected.ind_to_predicates
    np.testing.assert_array_equal(got.widths, expected.widths)
    np.testing.assert_array_equal(got.heights, expected.heights)
    for index in range(len(expected)):
        if same_names:
            assert got.file_name(index) == expected.file_name(index)
        else:
            assert os.path.realpath(got.image_path(index)) == os.path.realpath(expected.image_path(index))
        want, have = expected.get_groundtruth(index, True), got.get_groundtruth(index, True)
        for key in ("labels", "relation_tuple"):
            assert have[key].dtype == want[key].dtype and have[key].equal(want[key]), (index, key)
        assert have["boxes"].dtype == want["boxes"].dtype
        if box_bound == 0.0:
            assert have["boxes"].equal(want["boxes"]), index
        else:
            assert float((have["boxes"] - want["boxes"]).abs().max()) <= box_bound, index


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def round_trip(request, tmp_path_factory) -> tuple:
    """(layout, source config, config of the layout written back from its JSON conversion, the notes)."""
    layout = request.param
    config, write, settings = LAYOUTS[layout]
    root = str(tmp_path_factory.mktemp(f"synthvg_{layout}"))
    write(root)
    opts = ["DATASETS.DATA_DIR", root, *SAMPLE_OPTS, *settings]
    folder = os.path.join(root, "as_json")
    convert(config, folder, "json", opts)
    written = convert(config, os.path.join(root, "back"), layout, opts + json_opts(folder))
    source_cfg = load_config(config, opts + ["OUTPUT_DIR", os.path.join(root, "source_run")])
    back_cfg = load_config(config, opts + list(written.overrides) + ["OUTPUT_DIR", os.path.join(root, "back_run")])
    return layout, source_cfg, back_cfg, written


def test_round_trip_through_json_gives_the_original_samples(round_trip):
    layout, source_cfg, back_cfg, written = round_trip
    source, back = splits_of(source_cfg), splits_of(back_cfg)
    for mode in source:
        assert_same_samples(source[mode], back[mode])
    if layout == "vg150":
        np.testing.assert_array_equal(back["train"].image_ids, source["train"].image_ids)


def test_round_trip_through_json_gives_the_original_statistics(round_trip):
    _, source_cfg, back_cfg, _ = round_trip
    expected, got = get_dataset_statistics(source_cfg), get_dataset_statistics(back_cfg)
    np.testing.assert_array_equal(got.fg_matrix, expected.fg_matrix)
    np.testing.assert_array_equal(got.bg_matrix, expected.bg_matrix)
    np.testing.assert_array_equal(got.pred_dist, expected.pred_dist)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_example_json_written_in_each_layout_loads_the_same_samples(layout, tmp_path):
    config = LAYOUTS[layout][0]
    written = convert(config, str(tmp_path / "root"), layout, SAMPLE_OPTS + json_opts(EXAMPLE), images="link")
    json_cfg = load_config(config, SAMPLE_OPTS + json_opts(EXAMPLE))
    loaded_cfg = load_config(config, SAMPLE_OPTS + list(written.overrides))
    source, loaded = splits_of(json_cfg), splits_of(loaded_cfg)
    # VG150 renames the images <image_id>.jpg (links to the same files) and rounds boxes to its 1024 frame: on the
    # example's 64-pixel images every integer pixel is a frame value (16 units), so the bound is not even used
    box_bound = max(max(ds.widths.max(), ds.heights.max()) for ds in source.values()) / (2 * BOX_SCALE) + 1e-4 \
        if layout == "vg150" else 0.0
    assert_same_samples(source["train"], loaded["train"], box_bound, same_names=layout != "vg150")
    assert_same_samples(source["val"], loaded["val"], box_bound, same_names=layout != "vg150")
    if layout == "gqa200":
        # GQA-200 reads val from the start of the test file: test = val, then the source's test
        assert len(loaded["test"]) == len(source["val"]) + len(source["test"])
        assert any("start of the test file" in note for note in written.notes)
        tail = loaded["test"].get_groundtruth(len(source["val"]), True)
        head = source["test"].get_groundtruth(0, True)
        assert all(tail[key].equal(head[key]) for key in ("boxes", "labels", "relation_tuple"))
        assert loaded["test"].file_name(len(source["val"])) == source["test"].file_name(0)
    else:
        assert_same_samples(source["test"], loaded["test"], box_bound, same_names=layout != "vg150")
    if layout == "vg150":
        assert any("numbered 1, 2" in note for note in written.notes)


def test_vg150_frame_boxes_round_within_half_a_frame_unit_and_are_exact_from_a_frame():
    rng = np.random.default_rng(0)
    count = 5000
    widths, heights = rng.integers(20, 1500, count), rng.integers(20, 1500, count)
    longer = np.maximum(widths, heights)
    unit = longer / BOX_SCALE
    top_left = rng.uniform(-5, 1, (count, 2)) * np.stack([widths, heights], 1)
    size = unit[:, None] + rng.uniform(0, 1.2, (count, 2)) * np.stack([widths, heights], 1)
    boxes = np.concatenate([top_left, top_left + size], axis=1)
    wanted = clamped_boxes(boxes, widths, heights).astype(np.float64)
    error = np.abs(decoded_boxes(frame_boxes(boxes, widths, heights), widths, heights) - wanted)
    # half a frame unit; a box that is (after clamping) narrower than one unit, e.g. one outside the image, is
    # widened to one unit, which moves its far edge by at most 1.5 units
    narrow = np.tile(wanted[:, 2:] - wanted[:, :2] < unit[:, None], 2)
    bound = np.where(narrow, 3.0, 1.0) * (longer / (2 * BOX_SCALE))[:, None] + 1e-3
    assert (error <= bound).all()
    assert narrow.any() and (~narrow).any()
    assert (error > 0).any()
    frames = rng.integers(0, 1100, (count, 4))
    frames[:, 2:] = frames[:, :2] + rng.integers(1, 300, (count, 2))
    from_frame = frames / BOX_SCALE * longer[:, None]
    np.testing.assert_array_equal(frame_boxes(from_frame, widths, heights), frames)


def _example_with_a_val_image_without_relations(tmp_path) -> str:
    folder = str(tmp_path / "example")
    shutil.copytree(EXAMPLE, folder)
    with open(os.path.join(folder, "val.json")) as handle:
        val = json.load(handle)
    val["images"][0]["relations"] = []
    with open(os.path.join(folder, "val.json"), "w") as handle:
        json.dump(val, handle)
    return folder


@pytest.mark.parametrize("layout", ["oiv6", "gqa200"])
def test_an_unrepresentable_image_is_named_and_nothing_is_written(layout, tmp_path):
    folder = _example_with_a_val_image_without_relations(tmp_path)
    output = tmp_path / "out"
    with pytest.raises(UserInputError, match=r"val image 0 \('rider.jpg'\) has no relation"):
        convert(LAYOUTS[layout][0], str(output), layout, ["MODEL.RELATION_ON", "False", *json_opts(folder)])
    assert not output.exists()
    assert sorted(os.listdir(tmp_path)) == ["example"]


def test_vg150_refuses_an_inverted_box(tmp_path):
    root = str(tmp_path / "gqa_root")
    write_synthvg_gqa(root, OPTIONS, annotations_only=True)
    test_file = os.path.join(root, "gqa", "GQA_200_Train.json")
    with open(test_file) as handle:
        content = json.load(handle)
    record = next(i for i, rels in enumerate(content["relationships_all"]) if rels)
    x1, y1, x2, y2 = content["gt_boxes_all"][record][1]
    content["gt_boxes_all"][record][1] = [x2, y1, x1, y2]
    with open(test_file, "w") as handle:
        json.dump(content, handle)
    with pytest.raises(UserInputError, match=r"train image \d+ \('\d+\.jpg'\) object 1 field 'box' .* x2 < x1"):
        convert(LAYOUTS["gqa200"][0], str(tmp_path / "out"), "vg150",
                ["DATASETS.DATA_DIR", root, *SAMPLE_OPTS, "DATASETS.NUM_VAL_IM", "4"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("layout", ["json", *sorted(LAYOUTS)])
def test_an_existing_output_folder_is_refused(layout, tmp_path):
    output = tmp_path / "existing"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="already exists"):
        convert(LAYOUTS["vg150"][0], str(output), layout, SAMPLE_OPTS + json_opts(EXAMPLE))
    assert os.listdir(output) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == ["existing"]

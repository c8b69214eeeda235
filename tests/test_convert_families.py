"""tools/convert_dataset.py from Open Images V6, GQA-200 and the scene-graph JSON format itself
(docs/data.md#converting-between-families): SynthVG in each layout, converted to the scene-graph JSON format and
loaded back, gives the same samples in every split and the statistics the JSON family's conventions imply (VG150's: relations between boxes that neither overlap nor
touch are not counted in fg, where the source families count every relation; background pairs from the clamped
boxes the converter writes, where the source families read the stored ones); a JSON dataset converts to an
identical one."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from relation_testing import ROOT
from tool_loading import load_tool
from rebalance_hca.config import load_config
from rebalance_hca.data import build_dataset, get_dataset_statistics
from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg_gqa, write_synthvg_oi

OPTIONS = SynthVGOptions(num_images=60, seed=0)
EXAMPLE = os.path.join(ROOT, "docs", "examples", "scene_graph_json")
VG_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN.yaml")
SOURCES = {
    # layout: (config naming the family's datasets, writer of the annotation files, its settings)
    "oiv6": (os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN_oiv6.yaml"),
             lambda root: write_synthvg_oi(root, OPTIONS, num_val_images=10, annotations_only=True), []),
    "gqa200": (os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN_gqa200.yaml"),
               lambda root: write_synthvg_gqa(root, OPTIONS, annotations_only=True), ["DATASETS.NUM_VAL_IM", "4"]),
}


def json_opts(folder: str) -> list[str]:
    return [token for mode in ("train", "val", "test")
            for token in (f"DATASETS.{mode.upper()}", f"('json:{folder}:{mode}',)")]


@pytest.fixture(scope="module", params=sorted(SOURCES))
def converted(request, tmp_path_factory) -> tuple:
    """(source config, config of the converted JSON folder): SynthVG's annotations in the layout, converted
    without images."""
    config, write, settings = SOURCES[request.param]
    root = str(tmp_path_factory.mktemp(f"synthvg_{request.param}"))
    write(root)
    folder = os.path.join(root, "converted")
    opts = ["DATASETS.DATA_DIR", root, "MODEL.RELATION_ON", "True", *settings]
    load_tool("convert_dataset").main(["--config-file", config, "--output", folder, "--images", "none", *opts])
    opts += ["DATASETS.FILTER_DUPLICATE_RELS", "False"]
    return (load_config(config, opts + ["OUTPUT_DIR", os.path.join(root, "source_run")]),
            load_config(config, opts + json_opts(folder) + ["OUTPUT_DIR", os.path.join(root, "json_run")]))


def test_every_split_gives_the_same_samples(converted):
    source_cfg, json_cfg = converted
    for mode in ("train", "val", "test"):
        source, loaded = build_dataset(source_cfg, mode, with_transforms=False), build_dataset(json_cfg, mode, False)
        assert len(source) == len(loaded) > 0
        assert loaded.ind_to_classes == source.ind_to_classes
        assert loaded.ind_to_predicates == source.ind_to_predicates
        np.testing.assert_array_equal(loaded.widths, source.widths)
        np.testing.assert_array_equal(loaded.heights, source.heights)
        for index in range(len(source)):
            assert loaded.file_name(index) == source.file_name(index)
            expected, got = source.get_groundtruth(index, True), loaded.get_groundtruth(index, True)
            for key in ("boxes", "labels", "relation_tuple"):
                assert got[key].dtype == expected[key].dtype and got[key].equal(expected[key]), (mode, index, key)


def _counted_one_at_a_time(dataset, num_classes: int, num_predicates: int) -> tuple[np.ndarray, np.ndarray]:
    """What the JSON family's statistics count on the written (evaluation-form, clamped) boxes, one relation and
    one box pair at a time: fg (C, C, P) of the relations whose boxes overlap or touch (fg[:, :, 0] left 0),
    bg (C, C) of the ordered box pairs with a positive intersection (all pairs of an image without any), + 1."""
    fg = np.zeros((num_classes, num_classes, num_predicates), dtype=np.int64)
    bg = np.ones((num_classes, num_classes), dtype=np.int64)
    for index in range(len(dataset)):
        target = dataset.get_groundtruth(index, evaluation=True)
        boxes, labels = target["boxes"].tolist(), target["labels"].tolist()
        for subject, obj, predicate in target["relation_tuple"].tolist():
            (x1, y1, x2, y2), (u1, v1, u2, v2) = boxes[subject], boxes[obj]
            if min(x2, u2) >= max(x1, u1) and min(y2, v2) >= max(y1, v1):
                fg[labels[subject], labels[obj], predicate] += 1
        pairs = [(i, j) for i in range(len(boxes)) for j in range(len(boxes)) if i != j]
        overlapping = [(i, j) for i, j in pairs
                       if min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]) > 0
                       and min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]) > 0]
        for i, j in overlapping or pairs:
            bg[labels[i], labels[j]] += 1
    return fg, bg


def test_statistics_differ_only_by_the_json_conventions(converted):
    source_cfg, json_cfg = converted
    expected, got = get_dataset_statistics(source_cfg), get_dataset_statistics(json_cfg)
    num_classes, _, num_predicates = expected.fg_matrix.shape
    fg, bg = _counted_one_at_a_time(build_dataset(source_cfg, "train", with_transforms=False), num_classes,
                                    num_predicates)
    np.testing.assert_array_equal(got.bg_matrix, bg)
    fg[:, :, 0] = bg
    np.testing.assert_array_equal(got.fg_matrix, fg)
    # on these files, clamping changes no box pair's overlap (the background counts agree), and the overlap filter
    # drops some relations
    np.testing.assert_array_equal(got.bg_matrix, expected.bg_matrix)
    assert (got.fg_matrix <= expected.fg_matrix).all() and (got.fg_matrix != expected.fg_matrix).any()
    unchanged_pairs = (got.fg_matrix == expected.fg_matrix).all(axis=2)
    np.testing.assert_array_equal(got.pred_dist[unchanged_pairs], expected.pred_dist[unchanged_pairs])


def test_a_json_dataset_converts_to_an_identical_one(tmp_path):
    folder = str(tmp_path / "converted")
    load_tool("convert_dataset").main(["--config-file", VG_CONFIG, "--output", folder, "--images", "none",
                                       *json_opts(EXAMPLE)])
    for name in ("vocabulary.json", "train.json", "val.json", "test.json"):
        with open(os.path.join(EXAMPLE, name)) as source, open(os.path.join(folder, name)) as converted:
            assert json.load(converted) == json.load(source), name

"""GQA-200 loader semantics (SHA-GCL's gqa.py; docs/data.md#gqa-200) on the edge-case release of
``gqa_fixture.py``; expected values worked out by hand in the comments."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from gqa_fixture import EDGE_TRAIN, SKIPPED_TEST_POSITION, filler_test_records, release_content, \
    vocabulary_content, write_gqa_release
from rebalance_hca.config import load_config
from rebalance_hca.data import DataFormatError, GQADataset, build_dataset, dataset_paths, family_of
from rebalance_hca.data.build import get_dataset_statistics, train_vocabulary
from rebalance_hca.data.gqa import files as gqa_files
from rebalance_hca.data.gqa.statistics import load_or_compute_gqa_statistics
from rebalance_hca.evaluation import GQA_PROTOCOL


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("gqa_release"))
    write_gqa_release(root)
    return root


def dataset(root: str, split: str, **options) -> GQADataset:
    paths = dataset_paths(f"GQA_200_{split}", root)
    return GQADataset(paths.split, paths.img_dir, paths.dict_file, paths.train_file, paths.test_file, **options)


def gqa_config(root: str, *overrides: str):
    return load_config(None, ["DATASETS.TRAIN", "('GQA_200_train',)", "DATASETS.VAL", "('GQA_200_val',)",
                              "DATASETS.TEST", "('GQA_200_test',)", "DATASETS.DATA_DIR", root, *overrides])


def test_catalog_names_and_files(tmp_path):
    paths = dataset_paths("GQA_200_val", str(tmp_path))
    folder = os.path.join(str(tmp_path), "gqa")
    assert family_of("GQA_200_train").name == "GQA-200" and family_of("GQA_200_test").protocol is GQA_PROTOCOL
    assert paths.split == "val"
    assert (paths.img_dir, paths.dict_file, paths.train_file, paths.test_file) == (
        os.path.join(folder, "images"), os.path.join(folder, "GQA_200_ID_Info.json"),
        os.path.join(folder, "GQA_200_Train.json"), os.path.join(folder, "GQA_200_Test.json"))


def test_train_split_keeps_records_with_boxes_and_relations_in_file_order(release):
    train = dataset(release, "train")
    # records 2 (no relation) and 3 (nothing) dropped; record 6 repeats record 0's file name and is kept
    assert [train.image_id(i) for i in range(len(train))] == [0, 1, 4, 5, 6, 7]
    assert [train.file_name(i) for i in range(len(train))] == ["1.jpg", "n2.jpg", "5.jpg", "6.jpg", "1.jpg", "8.jpg"]
    assert train.get_img_info(4) == {"width": 32, "height": 32, "image_id": 6, "file_name": "1.jpg"}
    assert len(train.ind_to_classes) == 201 and len(train.ind_to_predicates) == 101


def test_val_and_test_skip_record_5580_and_val_is_the_first_5000(release):
    records = filler_test_records()
    usable = [i for i, r in enumerate(records) if r["boxes"] and r["relations"] and i != SKIPPED_TEST_POSITION]
    test, val = dataset(release, "test"), dataset(release, "val")
    test_ids = [test.image_id(i) for i in range(len(test))]
    assert test_ids == usable and SKIPPED_TEST_POSITION not in test_ids and len(test) > 5000
    assert [val.image_id(i) for i in range(len(val))] == usable[:5000]
    assert len(dataset(release, "val", num_val_im=7)) == 7


def test_evaluation_form_clamps_and_keeps_every_box(release):
    train = dataset(release, "train")
    target = train.get_groundtruth(1, evaluation=True)  # record 1, a 64 x 48 image
    assert target["boxes"].tolist() == [[1.5, 2.5, 30.25, 40.0], [63, 10, 63, 20], [30, 30, 10, 10], [5, 5, 5, 25],
                                        [0, 0, 10, 8]]
    assert target["boxes"].dtype == torch.float32
    assert target["labels"].tolist() == [10, 11, 12, 13, 200]
    assert target["relation_tuple"].tolist() == [[0, 1, 2], [1, 3, 3], [4, 0, 100], [2, 4, 4]]
    assert target["attributes"].shape == (5, 10) and not target["attributes"].any()


def test_training_form_removes_degenerate_boxes_and_their_relations(release):
    target = dataset(release, "train").get_groundtruth(1)
    # box 1 (x1 = x2 = 63 after the clamp), box 2 (inverted) and box 3 (zero width) go; boxes 0 and 4 stay,
    # so only (4, 0, 100) survives, as (1, 0)
    assert target["boxes"].tolist() == [[1.5, 2.5, 30.25, 40.0], [0, 0, 10, 8]]
    assert target["labels"].tolist() == [10, 200]
    assert target["relation"].tolist() == [[0, 0], [100, 0]]


def test_train_draws_one_predicate_per_pair_with_repeats_weighted(release):
    train = dataset(release, "train")
    draws = []
    for _ in range(600):
        relations = train.get_groundtruth(0, evaluation=True)["relation_tuple"]
        # pairs in first-occurrence order; (1, 2) and the self-relation (2, 2) have one predicate each
        assert relations[:, :2].tolist() == [[0, 1], [1, 2], [2, 2]] and relations[1:, 2].tolist() == [9, 1]
        draws.append(int(relations[0, 2]))
    assert set(draws) == {5, 7} and abs(draws.count(5) / len(draws) - 2 / 3) < 0.08  # 5, 5, 7: five twice
    assert train.get_groundtruth(0)["relation"][2, 2] == 1  # the self-relation sits on the diagonal


def test_val_and_test_keep_every_stored_relation(release):
    test = dataset(release, "test")
    records = filler_test_records()
    for index in (0, 1, len(test) - 1):
        stored = records[test.image_id(index)]["relations"]
        assert test.get_groundtruth(index, evaluation=True)["relation_tuple"].tolist() == stored
    train_all = dataset(release, "train", filter_duplicate_rels=False)
    assert train_all.get_groundtruth(0, evaluation=True)["relation_tuple"].tolist() == EDGE_TRAIN[0]["relations"]


def test_statistics_count_raw_boxes_all_relations_and_the_all_pairs_fallback(release):
    paths = dataset_paths("GQA_200_train", release)
    statistics = load_or_compute_gqa_statistics(paths.train_file, paths.dict_file)
    fg, bg = statistics.fg_matrix, statistics.bg_matrix
    assert fg.shape == (201, 201, 101) and fg.dtype == np.int64
    # 15 stored relations, duplicates counted: (3, 4, 5) twice, (3, 3, 8) twice
    assert fg[:, :, 1:].sum() == 15 and fg[3, 4, 5] == 2 and fg[3, 3, 8] == 2 and fg[200, 10, 100] == 1
    background = bg - 1
    # record 0: boxes 0 and 1 overlap; record 1: only the raw boxes 0 and 4 overlap (inverted, zero-width and
    # outside boxes never do); record 4: one box, nothing; record 5: edge-touching only, so all six ordered pairs;
    # record 6: one pair both ways; record 7: two boxes outside the image overlap each other
    expected = {(3, 4): 1, (4, 3): 1, (10, 200): 1, (200, 10): 1, (8, 9): 2, (9, 8): 2, (8, 8): 2, (3, 3): 2,
                (20, 21): 1, (21, 20): 1}
    assert background.sum() == sum(expected.values())
    assert all(background[pair] == count for pair, count in expected.items())
    assert np.array_equal(fg[:, :, 0], bg)
    assert statistics.pred_dist.dtype == np.float32
    assert math.isclose(statistics.pred_dist[3, 4, 5], math.log(2 / 5 + 1e-3), rel_tol=1e-6)  # fg 2, 2, 1 (bg + 1)
    assert math.isclose(statistics.pred_dist[1, 1, 0], math.log(1 + 1e-3), rel_tol=1e-6)


def test_build_dataset_vocabulary_statistics_and_stage2_through_the_registry(release, tmp_path):
    cfg = gqa_config(release, "OUTPUT_DIR", str(tmp_path), "MODEL.RELATION_ON", "False",
                     "MODEL.ROI_RELATION_HEAD.REBALANCE.TOP_K_PREDICATES", "1",
                     "MODEL.ROI_RELATION_HEAD.REBALANCE.MAX_INSTANCES", "1")
    # SHA-GCL drops records without relations even for detector pretraining (RELATION_ON False)
    assert len(build_dataset(cfg, "train", with_transforms=False)) == 6
    assert len(build_dataset(cfg, "val", with_transforms=False)) == 5000
    vocabulary = train_vocabulary(cfg)
    # predicate 2: record 1 once, record 5 twice; 5 and 8 twice each
    assert vocabulary.predicate_counts[[2, 5, 8]].tolist() == [3, 2, 2] and vocabulary.predicate_order[:3] == (2, 5, 8)
    # stage 2: predicate 2 keeps its first row (record 1); record 5, left without relations, is dropped
    stage2 = build_dataset(cfg, "train", with_transforms=False, rebalance=True)
    assert (stage2.index.relations[:, 2] == 2).sum() == 1
    assert [stage2.image_id(i) for i in range(len(stage2))] == [0, 1, 4, 6, 7]
    statistics = get_dataset_statistics(cfg)
    assert os.path.isfile(os.path.join(str(tmp_path), "GQA_200_train_statistics.cache"))
    assert statistics.fg_matrix[:, :, 1:].sum() == 15


def _write(root: str, train=None, vocabulary=None, raw_train: str | None = None) -> str:
    folder = write_gqa_release(root, EDGE_TRAIN, test_records=EDGE_TRAIN)
    if vocabulary is not None:
        with open(os.path.join(folder, "GQA_200_ID_Info.json"), "w") as handle:
            json.dump(vocabulary, handle)
    if train is not None or raw_train is not None:
        with open(os.path.join(folder, "GQA_200_Train.json"), "w") as handle:
            handle.write(raw_train if raw_train is not None else json.dumps(train))
    return folder


def _edited(edit) -> dict:
    content = json.loads(json.dumps(release_content(EDGE_TRAIN)))
    edit(content)
    return content


BAD_INPUTS = {
    "truncated": (dict(raw_train=json.dumps(release_content(EDGE_TRAIN))[:300]), r"GQA_200_Train.json: not valid JSON"),
    "missing key": (dict(train=_edited(lambda c: c.pop("gt_classes_all"))),
                    r"GQA_200_Train.json: missing key\(s\) \['gt_classes_all'\]"),
    "lengths differ": (dict(train=_edited(lambda c: c["filenames_all"].pop())),
                       r"GQA_200_Train.json: the per-image lists differ in length"),
    "box not numbers": (dict(train=_edited(lambda c: c["gt_boxes_all"][1][2].__setitem__(0, "30"))),
                        r"record 1 field 'gt_boxes_all' entries must be lists of 4 finite numbers"),
    "box number a list": (dict(train=_edited(lambda c: c["gt_boxes_all"][1][0].__setitem__(2, [30]))),
                          r"record 1 field 'gt_boxes_all' entries must be lists of 4 finite numbers"),
    "class a list": (dict(train=_edited(lambda c: c["gt_classes_all"][1].__setitem__(0, [5]))),
                     r"record 1 field 'gt_classes_all' must hold integers, got \[\[5\], "),
    "box of three": (dict(train=_edited(lambda c: c["gt_boxes_all"][5][0].pop())),
                     r"record 5 field 'gt_boxes_all' entries must be lists of 4"),
    "no width": (dict(train=_edited(lambda c: c["img_info_all"][2].pop("width"))),
                 r"record 2 field 'img_info_all' must be an object with positive integers"),
    "file name": (dict(train=_edited(lambda c: c["filenames_all"].__setitem__(4, 5))),
                  r"record 4 field 'filenames_all' must be a non-empty string, got 5"),
    "classes not a list": (dict(train=_edited(lambda c: c["gt_classes_all"].__setitem__(6, 3))),
                           r"record 6 field 'gt_classes_all' must be a list, got int"),
    "class count": (dict(train=_edited(lambda c: c["gt_classes_all"][0].pop())),
                    r"record 0 field 'gt_classes_all' has 2 entries but 'gt_boxes_all' has 3"),
    "box index": (dict(train=_edited(lambda c: c["relationships_all"][0].__setitem__(1, [0, 3, 9]))),
                  r"record 0 field 'relationships_all' entry 1 = \[0, 3, 9\] needs box indices in \[0, 3\)"),
    "negative index": (dict(train=_edited(lambda c: c["relationships_all"][7].__setitem__(0, [-1, 0, 11]))),
                       r"record 7 field 'relationships_all' entry 0 = \[-1, 0, 11\]"),
    "predicate 0": (dict(train=_edited(lambda c: c["relationships_all"][5].__setitem__(1, [2, 0, 0]))),
                    r"record 5 field 'relationships_all' holds id 0, but .*GQA_200_ID_Info.json field "
                    r"'ind_to_predicates' has 101 names"),
    "vocabulary too small": (dict(vocabulary=vocabulary_content(num_classes=151)),
                             r"GQA_200_Train.json: record 1 field 'gt_classes_all' holds id 200, but "
                             r".*GQA_200_ID_Info.json field 'ind_to_classes' has 151 names \(ids 1..150"),
    "vocabulary key": (dict(vocabulary={"ind_to_classes": ["__background__", "a"]}),
                       r"GQA_200_ID_Info.json: missing key 'ind_to_predicates'"),
    "vocabulary background": (dict(vocabulary=dict(vocabulary_content(), ind_to_predicates=["on", "in"])),
                              r"field 'ind_to_predicates' must start with '__background__', got 'on'"),
}


@pytest.mark.parametrize("reader", ["number arrays", "json only"])
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_file_record_and_field_and_writes_nothing(tmp_path, monkeypatch, case, reader):
    """The same message whether the array reader read the file or left it to json.load."""
    if reader == "json only":
        monkeypatch.setattr(gqa_files, "read_json_object_with_number_arrays", lambda path, shapes: None)
    arguments, message = BAD_INPUTS[case]
    _write(str(tmp_path), **arguments)
    output = tmp_path / "output"
    output.mkdir()
    cfg = gqa_config(str(tmp_path), "OUTPUT_DIR", str(output))
    for read in (get_dataset_statistics, train_vocabulary, lambda cfg: build_dataset(cfg, "train")):
        with pytest.raises(DataFormatError, match=message) as error:
            read(cfg)
        assert "\n" not in str(error.value)
    assert list(output.iterdir()) == []


def test_the_skipped_test_record_is_never_checked_but_other_records_are(tmp_path):
    records = filler_test_records()
    folder = write_gqa_release(str(tmp_path), train_records=records)  # the train file has no skipped record
    paths = dataset_paths("GQA_200_test", str(tmp_path))
    assert len(dataset(str(tmp_path), "test")) > 5000
    with pytest.raises(DataFormatError, match=rf"record {SKIPPED_TEST_POSITION} field 'img_info_all'"):
        dataset(str(tmp_path), "train")
    assert folder == os.path.dirname(paths.test_file)

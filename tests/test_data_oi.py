"""Open Images V6 loader semantics (docs/reference.md#open-images-v6) on a hand-written fixture in PySGG's layout;
expected values worked out by hand in the comments."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

from rebalance_hca.config import load_config
from rebalance_hca.data import DataFormatError, OIDataset, build_dataset, dataset_paths
from rebalance_hca.data.oi.statistics import load_or_compute_oi_statistics
from rebalance_hca.utils.seed import seeded_global_generators

CATEGORIES = {"obj": ["person", "horse", "hat"], "rel": ["ride", "wears", "on"]}
# Record 0: three boxes; box 1 leaves the 100x80 image, box 2 starts left of it. (0, 1) has two predicates
# (0 -> ride, 2 -> on), (0, 2) holds the same triplet twice (1 -> wears).
# Record 1: boxes but no relation. Record 2: no box at all. Record 3: box 1 is empty (x2 == x1).
RECORDS = [
    {"img_fn": "aaaa", "img_size": [100, 80], "bbox": [[10, 10, 50, 60], [40, 20, 120, 90], [-5, 0, 20, 10]],
     "det_labels": [0, 1, 2], "rel": [[0, 1, 0], [0, 1, 2], [0, 2, 1], [0, 2, 1]]},
    {"img_fn": "bbbb", "img_size": [64, 64], "bbox": [[0, 0, 10, 10]], "det_labels": [0], "rel": []},
    {"img_fn": "cccc", "img_size": [64, 64], "bbox": [], "det_labels": [], "rel": []},
    {"img_fn": "dddd", "img_size": [50, 50], "bbox": [[0, 0, 10, 10], [30, 30, 30, 40]], "det_labels": [1, 2],
     "rel": [[1, 0, 2]]},
]


def write_oi(root: str, records=RECORDS, categories=CATEGORIES) -> str:
    """Writes <root>/openimages/open_image_v6 with the same records in all three splits; returns root."""
    folder = os.path.join(root, "openimages", "open_image_v6")
    os.makedirs(os.path.join(folder, "annotations"), exist_ok=True)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    with open(os.path.join(folder, "annotations", "categories_dict.json"), "w") as stream:
        json.dump(categories, stream)
    for split in ("train", "val", "test"):
        with open(os.path.join(folder, "annotations", f"vrd-{split}-anno.json"), "w") as stream:
            json.dump(records, stream)
    return root


def dataset(root: str, split: str = "train", **options) -> OIDataset:
    paths = dataset_paths(f"openimage_v6_{split}", root)
    return OIDataset(paths.split, paths.img_dir, paths.ann_file, paths.dict_file, **options)


def oi_config(root: str, *overrides: str):
    return load_config(None, ["DATASETS.TRAIN", "('openimage_v6_train',)", "DATASETS.VAL", "('openimage_v6_val',)",
                              "DATASETS.TEST", "('openimage_v6_test',)", "DATASETS.DATA_DIR", root,
                              "MODEL.RELATION_ON", "True", *overrides])


def test_catalog_resolves_pysgg_layout(tmp_path):
    paths = dataset_paths("openimage_v6_val", str(tmp_path))
    folder = os.path.join(str(tmp_path), "openimages", "open_image_v6")
    assert paths.split == "val"
    assert paths.img_dir == os.path.join(folder, "images")
    assert paths.ann_file == os.path.join(folder, "annotations", "vrd-val-anno.json")
    assert paths.dict_file == os.path.join(folder, "annotations", "categories_dict.json")
    with pytest.raises(KeyError, match="openimage_v6_train"):
        dataset_paths("openimage_v6_minival", str(tmp_path))


def test_label_and_predicate_shifts_and_evaluation_keeps_every_relation(tmp_path):
    ds = dataset(write_oi(str(tmp_path)), "test")
    assert ds.ind_to_classes == ["__background__", "person", "horse", "hat"]
    assert ds.ind_to_predicates == ["__background__", "ride", "wears", "on"]
    target = ds.get_groundtruth(0, evaluation=True)
    assert target["labels"].tolist() == [1, 2, 3]
    # Predicates +1, box indices unchanged, duplicates and multi-predicate pairs all kept (no de-duplication).
    assert target["relation_tuple"].tolist() == [[0, 1, 1], [0, 1, 3], [0, 2, 2], [0, 2, 2]]
    assert target["attributes"].shape == (3, 10) and int(target["attributes"].abs().sum()) == 0
    assert ds.get_img_info(0) == {"width": 100, "height": 80, "image_id": 0, "file_name": "aaaa.jpg"}
    assert ds.get_img_info(1)["image_id"] == 3  # the record's index in the file
    assert ds.image_path(1) == os.path.join(ds.img_dir, "dddd.jpg")


def test_boxes_are_clamped_to_w_minus_1_and_empty_boxes_removed_for_training_only(tmp_path):
    ds = dataset(write_oi(str(tmp_path)), "train")
    # Clamp to [0, 99] x [0, 79]: (40, 20, 120, 90) -> (40, 20, 99, 79); (-5, 0, 20, 10) -> (0, 0, 20, 10).
    assert ds.get_groundtruth(0, evaluation=True)["boxes"].tolist() == [[10, 10, 50, 60], [40, 20, 99, 79],
                                                                       [0, 0, 20, 10]]
    evaluation = ds.get_groundtruth(1, evaluation=True)
    assert evaluation["boxes"].tolist() == [[0, 0, 10, 10], [30, 30, 30, 40]]
    training = ds.get_groundtruth(1)
    # Box 1 has x2 == x1: dropped with its relation row and column (the relation 1 -> 0 goes with it).
    assert training["boxes"].tolist() == [[0, 0, 10, 10]]
    assert training["relation"].tolist() == [[0]]


def test_train_draws_one_predicate_per_pair_and_val_keeps_all(tmp_path):
    root = write_oi(str(tmp_path))
    train = dataset(root, "train")
    seen = set()
    for seed in range(20):
        with seeded_global_generators(seed):
            relation = train.get_groundtruth(0)["relation"]
        assert relation[0, 2] == 2 and int((relation != 0).sum()) == 2
        seen.add(int(relation[0, 1]))
    assert seen == {1, 3}  # ride or on, drawn afresh
    val = dataset(root, "val")
    assert not val.filter_duplicate_rels
    assert len(val.get_groundtruth(0, evaluation=True)["relation_tuple"]) == 4


def test_empty_relation_filter(tmp_path):
    root = write_oi(str(tmp_path))
    assert dataset(root, "train").index.image_rows.tolist() == [0, 3]
    # Detector pretraining (RELATION_ON False): every record, also without relations or boxes.
    assert dataset(root, "train", filter_empty_rels=False).index.image_rows.tolist() == [0, 1, 2, 3]
    # num_im truncates before filtering, as PySGG.
    assert dataset(root, "train", num_im=2).index.image_rows.tolist() == [0]
    cfg = oi_config(root, "MODEL.RELATION_ON", "False")
    assert len(build_dataset(cfg, "train", with_transforms=False)) == 4


def test_statistics_count_raw_relations_and_store_the_log(tmp_path):
    root = write_oi(str(tmp_path))
    paths = dataset_paths("openimage_v6_train", root)
    stats = load_or_compute_oi_statistics(paths.ann_file, paths.dict_file)
    fg = stats.fg_matrix
    # person -> horse: ride 1, on 1; person -> hat: wears twice (duplicates counted); hat -> horse: on 1.
    assert fg[1, 2, 1:].tolist() == [1, 0, 1] and fg[1, 3, 1:].tolist() == [0, 2, 0] and fg[3, 2, 1:].tolist() == [0, 0, 1]
    assert int(fg[:, :, 1:].sum()) == 5
    # bg, in original pixels without +1: record 0 has one overlapping pair (boxes 0 and 1) -> person/horse both
    # ways; record 3 has none, so all its ordered pairs count (horse/hat both ways); then +1 everywhere.
    assert stats.bg_matrix[1, 2] == 2 and stats.bg_matrix[2, 1] == 2
    assert stats.bg_matrix[2, 3] == 2 and stats.bg_matrix[3, 2] == 2 and stats.bg_matrix[1, 3] == 1
    # pred_dist is the log of fg / sum + 1e-3: person -> horse is [bg 2, ride 1, wears 0, on 1] / 4.
    expected = np.log(np.array([2, 1, 0, 1]) / 4 + 1e-3).astype(np.float32)
    np.testing.assert_allclose(stats.pred_dist[1, 2], expected, rtol=1e-6)


def test_stage2_rebalancing_ranks_the_train_file_counts(tmp_path):
    root = write_oi(str(tmp_path))
    # Train counts: ride 1, wears 2, on 2 -> order wears, on, ride (ties by id). Top 1 = wears, capped at 1 row.
    cfg = oi_config(root, "MODEL.ROI_RELATION_HEAD.REBALANCE.TOP_K_PREDICATES", "1",
                    "MODEL.ROI_RELATION_HEAD.REBALANCE.MAX_INSTANCES", "1")
    rebalanced = build_dataset(cfg, "train", with_transforms=False, rebalance=True)
    assert rebalanced.index.relations.tolist() == [[0, 1, 1], [0, 1, 3], [0, 2, 2], [1, 0, 3]]
    full = build_dataset(cfg, "train", with_transforms=False, rebalance=False)
    assert len(full.index.relations) == 5


def test_resampling_applies_to_the_training_loader_split_only(tmp_path):
    cfg = oi_config(write_oi(str(tmp_path)), "MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING", "True")
    train = build_dataset(cfg, "train")
    # Frequencies ride 0.2, wears 0.4, on 0.4 with REPEAT_FACTOR 0.1: every sqrt(0.1 / f) < 1, so no repeat.
    assert train.resampling.predicate_factors.tolist() == [1, 1, 1, 1]
    assert train.resampling.image_factors.tolist() == [1, 1]
    assert build_dataset(cfg, "train", augment=False).resampling is None
    assert build_dataset(oi_config(cfg.DATASETS.DATA_DIR), "train").resampling is None


def _bad(records_change=None, categories=None):
    records = copy.deepcopy(RECORDS)
    if records_change:
        records_change(records)
    return records, categories or CATEGORIES


BAD_INPUTS = [
    (lambda r: r[1].pop("rel"), "record 1 lacks field(s) ['rel']"),
    (lambda r: r[1].__setitem__("img_fn", ""), "record 1 field 'img_fn'"),
    (lambda r: r[1].__setitem__("img_size", [64, 0]), "record 1 field 'img_size' must hold 2 positive integers"),
    (lambda r: r[1].__setitem__("img_size", [64]), "record 1 field 'img_size' must hold 2 positive integers"),
    (lambda r: r[3]["bbox"].__setitem__(1, [30, 30, 40]), "record 3 field 'bbox' entries must be lists of 4 finite numbers, got [[0, 0, 10, 10], [30, 30, 40]]"),
    (lambda r: r[3]["bbox"].__setitem__(0, [0, 0, "10", 10]), "record 3 field 'bbox' entries must be lists of 4 finite numbers"),
    (lambda r: r[3]["det_labels"].append(0), "record 3 field 'det_labels' has 3 entries but 'bbox' has 2"),
    (lambda r: r[3]["rel"].append([0, 2, 0]), "record 3 field 'rel' entry 1 = [0, 2, 0] needs box indices in [0, 2)"),
    (lambda r: r[3]["rel"].__setitem__(0, [1, 0, 1.0]), "record 3 field 'rel' entries must be lists of 3 integers"),
    (lambda r: r[3]["det_labels"].__setitem__(0, 3), "record 3 field 'det_labels' holds index 3"),
    (lambda r: r[3]["rel"].__setitem__(0, [1, 0, 7]), "record 3 field 'rel' holds index 7"),
    (lambda r: r.__setitem__(2, ["cccc"]), "record 2 is a list, expected an object"),
    (lambda r: r[0]["bbox"].__setitem__(2, [-5, 0, float("nan"), 10]), "record 0 field 'bbox' entries must be lists"),
    (lambda r: r[1]["det_labels"].__setitem__(0, None), "record 1 field 'det_labels' must hold integers"),
    (lambda r: r[1].__setitem__("bbox", {}), "record 1 field 'bbox' must be a list, got dict"),
]


@pytest.mark.parametrize("change, message", BAD_INPUTS)
def test_malformed_records_name_file_record_and_field(tmp_path, change, message):
    root = write_oi(str(tmp_path), *_bad(change))
    with pytest.raises(DataFormatError) as error:
        dataset(root, "test")
    assert "vrd-test-anno.json" in str(error.value) and message in str(error.value)


@pytest.mark.parametrize("categories, message", [({"obj": ["a"]}, "'rel' must be a non-empty list"),
                                                 ({"obj": ["a", "a"], "rel": ["r"]}, "'obj' names must be distinct")])
def test_malformed_categories_name_the_file(tmp_path, categories, message):
    root = write_oi(str(tmp_path), RECORDS, categories)
    with pytest.raises(DataFormatError, match=message) as error:
        dataset(root, "test")
    assert "categories_dict.json" in str(error.value)


def test_annotation_file_that_is_not_a_list(tmp_path):
    root = write_oi(str(tmp_path), {"images": []})
    with pytest.raises(DataFormatError, match="vrd-test-anno.json: expected a JSON list"):
        dataset(root, "test")


def test_detector_pretraining_keeps_empty_records_in_train_only(tmp_path):
    """PySGG filters empty records on val and test whatever MODEL.RELATION_ON says: records 1 (no relation)
    and 2 (no box) leave val and test, and stay in train, when the detector is pretrained."""
    cfg = oi_config(write_oi(str(tmp_path)), "MODEL.RELATION_ON", "False")
    kept = {mode: build_dataset(cfg, mode, with_transforms=False).index.image_rows.tolist()
            for mode in ("train", "val", "test")}
    assert kept == {"train": [0, 1, 2, 3], "val": [0, 3], "test": [0, 3]}

"""Loader semantics on hand-written fixtures (docs/reference.md#vg150-data, #rebalanced-split);
expected values stated by hand."""
import numpy as np
import pytest
import torch
from PIL import Image

from rebalance_hca.data import DataFormatError, RebalanceSpec, VGDataset

from vg_fixture import EXIF_ORIENTATION, FixtureImage, box, write_fixture


def six_images():
    """0: train pool, 1 rel | 1: no boxes | 2: boxes, no rels | 3: test | 4, 5: train pool with rels."""
    two_boxes = [box(0, 0, 100, 100), box(50, 50, 200, 200)]
    return [
        FixtureImage(split=0, boxes=two_boxes, labels=[1, 2], relations=[(0, 1, 3)]),
        FixtureImage(split=0),
        FixtureImage(split=0, boxes=two_boxes, labels=[1, 3]),
        FixtureImage(split=2, boxes=two_boxes, labels=[2, 3], relations=[(1, 0, 1)]),
        FixtureImage(split=0, boxes=two_boxes, labels=[2, 2], relations=[(0, 1, 2)]),
        FixtureImage(split=0, boxes=two_boxes, labels=[3, 1], relations=[(1, 0, 3)]),
    ]


def test_split_selection_and_val_carve_out(tmp_path):
    paths = write_fixture(str(tmp_path), six_images())
    val = VGDataset("val", num_val_im=1, **paths)
    train = VGDataset("train", num_val_im=1, **paths)
    test = VGDataset("test", num_val_im=1, **paths)
    assert val.image_ids.tolist() == [1600]
    assert train.image_ids.tolist() == [1604, 1605]
    assert test.image_ids.tolist() == [1603]
    detector_train = VGDataset("train", num_val_im=1, filter_empty_rels=False, **paths)
    assert detector_train.image_ids.tolist() == [1602, 1604, 1605]


def test_vocabulary_adds_background(tmp_path):
    ds = VGDataset("test", num_val_im=0, **write_fixture(str(tmp_path), six_images()))
    assert ds.ind_to_classes == ["__background__", "cup", "man", "table"]
    assert ds.ind_to_predicates == ["__background__", "has", "near", "on"]


def test_box_decoding_truncates_and_rescales(tmp_path):
    # cx=10, cy=11, w=5, h=4: x1 = trunc(7.5) = 7, y1 = 9, x2 = 12, y2 = 13 in the 1024 frame.
    image = FixtureImage(split=2, width=512, height=256, boxes=[(10, 11, 5, 4), (600, 200, 100, 50)],
                         labels=[1, 2], relations=[(0, 1, 1)])
    ds = VGDataset("test", num_val_im=0, **write_fixture(str(tmp_path), [image]))
    assert ds.image_boxes_1024(0).tolist() == [[7, 9, 12, 13], [550, 175, 650, 225]]
    target = ds.get_groundtruth(0, evaluation=True)
    # scale = max(512, 256) / 1024 = 0.5; the second box is clipped to x2 <= W - 1 = 511, y2 <= 255.
    expected = [[3.5, 4.5, 6.0, 6.5], [275.0, 87.5, 325.0, 112.5]]
    assert target["boxes"].tolist() == expected
    assert target["labels"].tolist() == [1, 2]
    assert target["relation_tuple"].tolist() == [[0, 1, 1]]
    assert target["relation"].tolist() == [[0, 1], [0, 0]]


def test_clipping_and_remove_empty(tmp_path):
    # Box 1 lies right of the 64-px image: clipped to x1 = x2 = 63, removed for training only.
    image = FixtureImage(split=0, width=64, height=64,
                         boxes=[box(0, 0, 500, 500), box(1100, 0, 1200, 100), box(100, 100, 300, 300)],
                         labels=[1, 2, 3], relations=[(0, 2, 3), (1, 2, 1)])
    paths = write_fixture(str(tmp_path), [image])
    ds = VGDataset("train", num_val_im=0, **paths)
    evaluation = ds.get_groundtruth(0, evaluation=True)
    assert evaluation["boxes"][1].tolist() == [63.0, 0.0, 63.0, 6.25]
    assert len(evaluation["labels"]) == 3
    training = ds.get_groundtruth(0)
    assert training["labels"].tolist() == [1, 3]
    assert training["relation"].tolist() == [[0, 3], [0, 0]]


def test_duplicate_filter_draws_fresh_choice_per_load(tmp_path):
    image = FixtureImage(split=0, boxes=[box(0, 0, 100, 100), box(50, 50, 200, 200)], labels=[1, 2],
                         relations=[(0, 1, 1), (0, 1, 2), (1, 0, 3)])
    paths = write_fixture(str(tmp_path), [image, FixtureImage(split=2, boxes=image.boxes, labels=[1, 2],
                                                              relations=image.relations)])
    train = VGDataset("train", num_val_im=0, **paths)
    np.random.seed(0)
    chosen = set()
    for _ in range(40):
        relations = train.get_groundtruth(0, evaluation=True)["relation_tuple"].tolist()
        assert len(relations) == 2 and relations[1] == [1, 0, 3]
        assert relations[0][:2] == [0, 1] and relations[0][2] in (1, 2)
        chosen.add(relations[0][2])
    assert chosen == {1, 2}
    test = VGDataset("test", num_val_im=0, **paths)
    assert test.get_groundtruth(0, evaluation=True)["relation_tuple"].tolist() == [list(r) for r in image.relations]
    train_without_filter = VGDataset("train", num_val_im=0, filter_duplicate_rels=False, **paths)
    assert len(train_without_filter.get_groundtruth(0, evaluation=True)["relation_tuple"]) == 3


def test_relation_matrix_overwrites_a_repeated_pair_half_the_time(tmp_path):
    image = FixtureImage(split=2, boxes=[box(0, 0, 100, 100), box(50, 50, 200, 200)], labels=[1, 2],
                         relations=[(0, 1, 1), (0, 1, 2)])
    ds = VGDataset("test", num_val_im=0, **write_fixture(str(tmp_path), [image]))
    np.random.seed(1)
    values = [int(ds.get_groundtruth(0)["relation"][0, 1]) for _ in range(400)]
    assert set(values) == {1, 2}
    assert 0.4 < values.count(2) / 400 < 0.6


def test_non_overlap_filter_drops_relations_and_empty_images(tmp_path):
    far_apart = [box(0, 0, 100, 100), box(500, 500, 600, 600), box(90, 90, 200, 200)]
    images = [
        FixtureImage(split=0, boxes=far_apart, labels=[1, 2, 3], relations=[(0, 1, 1), (0, 2, 2)]),
        FixtureImage(split=0, boxes=far_apart, labels=[1, 2, 3], relations=[(0, 1, 3)]),
    ]
    ds = VGDataset("train", num_val_im=0, filter_non_overlap=True, **write_fixture(str(tmp_path), images))
    assert ds.image_ids.tolist() == [1600]
    assert ds.image_relations(0).tolist() == [[0, 2, 2]]


def test_corrupted_image_ids_are_dropped_before_alignment(tmp_path):
    paths = write_fixture(str(tmp_path), six_images(), corrupted_entries=True)
    test = VGDataset("test", num_val_im=1, **paths)
    assert test.image_ids.tolist() == [1603]
    assert test.get_img_info(0) == {"width": 64, "height": 48, "image_id": 1603, "file_name": "1603.jpg"}


def test_rebalancing_caps_head_predicates_in_file_order(tmp_path):
    pair = [box(0, 0, 100, 100), box(50, 50, 200, 200)]
    images = [
        FixtureImage(split=0, boxes=pair, labels=[1, 2], relations=[(0, 1, 3), (1, 0, 3)]),  # two "on"
        FixtureImage(split=0, boxes=pair, labels=[1, 2], relations=[(0, 1, 3), (1, 0, 2)]),  # on, near
        FixtureImage(split=0, boxes=pair, labels=[1, 2], relations=[(0, 1, 3)]),             # on only
        FixtureImage(split=0, boxes=pair, labels=[1, 2], relations=[(0, 1, 1), (1, 0, 1)]),  # has, has
    ]
    # Counts rank: on (9) > has (5) > near (3). Top 2 predicates capped at 2 rows each.
    spec = RebalanceSpec(predicate_order=(3, 1, 2), top_k=2, max_instances=2)
    ds = VGDataset("train", num_val_im=0, rebalance=spec, **write_fixture(str(tmp_path), images))
    assert ds.image_ids.tolist() == [1600, 1601, 1603]       # image 2 lost its only relation
    assert ds.image_relations(0).tolist() == [[0, 1, 3], [1, 0, 3]]
    assert ds.image_relations(1).tolist() == [[1, 0, 2]]      # third "on" dropped, near kept
    assert ds.image_relations(2).tolist() == [[0, 1, 1], [1, 0, 1]]
    assert ds.get_groundtruth(1)["labels"].tolist() == [1, 2]  # boxes are kept


def test_relation_triplets_use_object_classes(tmp_path):
    ds = VGDataset("train", num_val_im=1, **write_fixture(str(tmp_path), six_images()))
    assert ds.relation_triplets().tolist() == [[2, 2, 2], [1, 3, 3]]


def test_dataset_item_applies_transforms_and_reads_the_image(tmp_path):
    ds = VGDataset("test", num_val_im=0, transforms=lambda image, target: (image.shape, target),
                   **write_fixture(str(tmp_path), six_images()))
    shape, target, index = ds[0]
    assert shape == (48, 64, 3) and index == 0
    assert target["relation"].dtype == torch.int64


def test_exif_rotation_is_ignored_like_pil_and_the_annotations(tmp_path):
    """An Orientation=6 tag must not rotate the decoded pixels: VG's sizes and boxes are in the stored frame."""
    image = FixtureImage(split=2, width=64, height=48, boxes=[box(0, 0, 400, 300), box(500, 100, 1000, 700)],
                         labels=[1, 2], relations=[(0, 1, 1)], exif_orientation=6)
    ds = VGDataset("test", num_val_im=0, **write_fixture(str(tmp_path), [image]))
    assert Image.open(ds.image_path(0)).getexif()[EXIF_ORIENTATION] == 6
    decoded, target, _ = ds[0]
    assert (decoded.shape[1], decoded.shape[0]) == Image.open(ds.image_path(0)).size == (64, 48)
    assert target["boxes"].tolist() == ds.get_groundtruth(0)["boxes"].tolist() == [[0.0, 0.0, 25.0, 18.75],
                                                                                   [31.25, 6.25, 62.5, 43.75]]


# ------------------------------------------------------------------------------------------------------
# Bad input: each raises DataFormatError naming the file and the problem.
# ------------------------------------------------------------------------------------------------------
def test_missing_file_is_named(tmp_path):
    paths = write_fixture(str(tmp_path), six_images())
    paths["roidb_file"] = str(tmp_path / "nope.h5")
    with pytest.raises(DataFormatError, match="nope.h5"):
        VGDataset("train", **paths)


def test_h5_missing_dataset(tmp_path):
    import h5py
    paths = write_fixture(str(tmp_path), six_images())
    with h5py.File(paths["roidb_file"], "a") as handle:
        del handle["predicates"]
    with pytest.raises(DataFormatError, match=r"missing dataset\(s\) \['predicates'\]"):
        VGDataset("train", **paths)


def test_relation_index_out_of_range(tmp_path):
    import h5py
    paths = write_fixture(str(tmp_path), six_images())
    with h5py.File(paths["roidb_file"], "a") as handle:
        relationships = handle["relationships"][:]
        relationships[0, 1] = 4   # object row 4 belongs to image 3, not image 0
        handle["relationships"][...] = relationships
    with pytest.raises(DataFormatError, match="relationship row 0 of image row 0"):
        VGDataset("val", num_val_im=1, **paths)


def test_box_rows_out_of_range(tmp_path):
    import h5py
    paths = write_fixture(str(tmp_path), six_images())
    with h5py.File(paths["roidb_file"], "a") as handle:
        handle["img_to_last_box"][5] = 99
    with pytest.raises(DataFormatError, match="image row 5 has img_to_first_box"):
        VGDataset("train", num_val_im=1, **paths)


def test_labels_beyond_dictionary(tmp_path):
    images = six_images()
    images[0].labels = [1, 7]
    with pytest.raises(DataFormatError, match=r"labels range \[1, 7\] does not fit"):
        VGDataset("train", num_val_im=1, **write_fixture(str(tmp_path), images))


def test_image_data_json_misaligned(tmp_path):
    import json
    paths = write_fixture(str(tmp_path), six_images())
    with open(paths["image_file"]) as handle:
        entries = json.load(handle)
    with open(paths["image_file"], "w") as handle:
        json.dump(entries[:-1], handle)
    with pytest.raises(DataFormatError, match="5 images after dropping the corrupted ids"):
        VGDataset("train", num_val_im=1, **paths)


def test_missing_image_named_at_load_time(tmp_path):
    images = six_images()
    images[3].write_image = False
    ds = VGDataset("test", num_val_im=0, **write_fixture(str(tmp_path), images))
    with pytest.raises(DataFormatError, match="1603.jpg"):
        ds[0]


def test_unreadable_image_named_at_load_time(tmp_path):
    paths = write_fixture(str(tmp_path), six_images())
    with open(f"{paths['img_dir']}/1603.jpg", "wb") as handle:
        handle.write(b"not a jpeg")
    ds = VGDataset("test", num_val_im=0, **paths)
    with pytest.raises(DataFormatError, match="cannot be decoded: .*1603.jpg"):
        ds[0]


def test_empty_split_after_filtering(tmp_path):
    with pytest.raises(DataFormatError, match="'val' split is empty"):
        VGDataset("val", num_val_im=5, **write_fixture(str(tmp_path), [six_images()[3]]))

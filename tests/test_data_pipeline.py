"""Transforms, collation, samplers, config and the config-driven loader."""
import os

import numpy as np
import pytest
import torch

from rebalance_hca.config import ConfigError, load_config
from rebalance_hca.data import build_dataset, dataset_paths, make_data_loader
from rebalance_hca.data.collate import to_image_list
from rebalance_hca.data.samplers import InferenceBatchSampler, IterationBatchSampler, aspect_ratio_groups
from rebalance_hca.data.transforms import RandomFlip, Resize, ToNormalizedTensor, resized_size
from rebalance_hca.data.vg.files import load_vocabulary

from vg_fixture import FixtureImage, box, write_fixture

SHARED_VG = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "vg")


@pytest.mark.parametrize("width, height, min_size, max_size, expected", [
    (800, 600, 600, 1000, (600, 800)),     # already at size
    (1024, 512, 600, 1000, (500, 1000)),   # long side would be 1200 > 1000: short = round(1000 * 512/1024)
    (300, 400, 600, 1000, (800, 600)),     # portrait: w -> 600, h = int(600 * 400 / 300)
    (333, 500, 600, 1000, (900, 600)),     # int() truncation: 600 * 500 / 333 = 900.9
])
def test_resized_size_matches_sgb(width, height, min_size, max_size, expected):
    assert resized_size(width, height, min_size, max_size) == expected


def test_resize_scales_boxes_and_flip_mirrors_with_plus_one():
    image = np.zeros((50, 100, 3), dtype=np.uint8)
    target = {"boxes": torch.tensor([[10.0, 5.0, 30.0, 25.0]])}
    resized, target = Resize((100,), 1000)(image, target)
    assert resized.shape == (100, 200, 3)
    assert target["boxes"].tolist() == [[20.0, 10.0, 60.0, 50.0]]
    flipped, flipped_target = RandomFlip(1.0, horizontal=True)(resized, target)
    assert flipped_target["boxes"].tolist() == [[200 - 60 - 1, 10.0, 200 - 20 - 1, 50.0]]
    _, vertical = RandomFlip(1.0, horizontal=False)(resized, target)
    assert vertical["boxes"].tolist() == [[20.0, 100 - 50 - 1, 60.0, 100 - 10 - 1]]


def test_bgr255_normalisation():
    image = np.zeros((1, 1, 3), dtype=np.uint8)
    image[0, 0] = (10, 20, 30)   # B, G, R
    tensor, _ = ToNormalizedTensor([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], to_bgr255=True)(image, {})
    assert tensor.flatten().tolist() == [9.0, 9.0, 9.0]
    rgb, _ = ToNormalizedTensor([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], to_bgr255=False)(image, {})
    np.testing.assert_allclose(rgb.flatten().numpy(), [30 / 255, 20 / 255, 10 / 255], rtol=1e-6)


def test_collate_pads_to_size_divisibility():
    images = [torch.ones(3, 30, 40), torch.ones(3, 33, 20)]
    batch = to_image_list(images, size_divisible=32)
    assert batch.tensors.shape == (2, 3, 64, 64)
    assert batch.image_sizes == [(30, 40), (33, 20)]
    assert batch.tensors[1, :, 33:].abs().sum() == 0 and batch.tensors[1, :, :33, :20].min() == 1


def test_iteration_sampler_groups_aspect_and_resumes_exactly():
    groups = aspect_ratio_groups(np.array([0.5, 1.5, 0.7, 1.0, 0.9, 2.0, 0.6, 1.2, 0.8, 1.1]))
    assert groups.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    full = list(IterationBatchSampler(groups, batch_size=2, num_iterations=11, seed=3))
    assert len(full) == 11
    assert all(len(set(groups[_indices(batch)])) == 1 for batch in full)
    resumed = list(IterationBatchSampler(groups, batch_size=2, num_iterations=11, start_iter=7, seed=3))
    assert resumed == full[7:]


def test_iteration_sampler_shards_disjointly_across_ranks():
    groups = np.zeros(12, dtype=np.int64)
    shards = [IterationBatchSampler(groups, 2, 3, seed=0, rank=rank, world_size=2).epoch_batches(0)
              for rank in range(2)]
    seen = [int(i) for shard in shards for batch in shard for i in batch]
    assert sorted(seen) == list(range(12))


def _indices(batch) -> list[int]:
    """The dataset indices of a batch of (index, sample seed) keys."""
    return [index for index, _ in batch]


def test_ranks_stay_in_step_and_never_share_an_image():
    """103 images, 2 ranks of 4 images, 1,000 steps (about 12 epochs): every epoch gives both ranks the same
    number of batches from disjoint images, so no step has an image on both ranks."""
    groups = aspect_ratio_groups(np.random.default_rng(0).uniform(0.5, 2.0, 103))
    samplers = [IterationBatchSampler(groups, 4, 1000, seed=20, rank=rank, world_size=2) for rank in range(2)]
    for epoch in range(12):
        shards = [sampler.epoch_batches(epoch) for sampler in samplers]
        assert len(shards[0]) == len(shards[1]) > 0
        assert not set(np.concatenate(shards[0])) & set(np.concatenate(shards[1]))
    steps = [list(sampler) for sampler in samplers]
    assert len(steps[0]) == len(steps[1]) == 1000
    assert sum(bool(set(_indices(a)) & set(_indices(b))) for a, b in zip(*steps)) == 0


def test_every_rank_raises_when_one_rank_has_no_full_batch():
    # SEED 0: rank 0 is dealt 3 images (a same-group pair among them), rank 1 one landscape and one portrait.
    groups = np.array([0, 0, 1, 1, 1])
    for rank in range(2):
        with pytest.raises(ValueError, match="epoch 0: rank 1 has no full batch of 2 images"):
            list(IterationBatchSampler(groups, 2, 1, seed=0, rank=rank, world_size=2))


def test_inference_sampler_covers_every_image_once():
    batches = [list(InferenceBatchSampler(7, 2, rank=rank, world_size=2)) for rank in range(2)]
    assert [_indices(batch) for batch in batches[0]] == [[0, 2], [4, 6]]
    assert [_indices(batch) for batch in batches[1]] == [[1, 3], [5]]


def test_config_precedence_and_errors(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("SOLVER:\n  BASE_LR: 0.01\n  MAX_ITER: 7\n")
    cfg = load_config(str(config_file), ["SOLVER.MAX_ITER", "9", "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "False"])
    assert cfg.SOLVER.BASE_LR == 0.01 and cfg.SOLVER.MAX_ITER == 9
    assert cfg.MODEL.ROI_RELATION_HEAD.USE_GT_BOX is False
    assert load_config(opts=["SOLVER.STEPS", "(10000, 16000)"]).SOLVER.STEPS == (10000, 16000)
    with pytest.raises(ConfigError, match="unknown config key MODEL.ROI_RELATION_HEAD.USE_GT_BOXES"):
        load_config(opts=["MODEL.ROI_RELATION_HEAD.USE_GT_BOXES", "True"])
    with pytest.raises(ConfigError, match="SOLVER.MAX_ITER expects int"):
        load_config(opts=["SOLVER.MAX_ITER", "many"])
    config_file.write_text("SOLVER:\n  BASE_LRR: 0.01\n")
    with pytest.raises(ConfigError, match="c.yaml: unknown config key SOLVER.BASE_LRR"):
        load_config(str(config_file))
    with pytest.raises(ConfigError, match="odd number"):
        load_config(opts=["SOLVER.MAX_ITER"])


def test_catalog_resolves_under_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REBALANCE_HCA_DATA_DIR", str(tmp_path / "env"))
    paths = dataset_paths("VG_stanford_filtered_with_attribute_val")
    assert paths.split == "val" and paths.roidb_file == str(tmp_path / "env" / "vg" / "VG-SGG-with-attri.h5")
    assert dataset_paths("VG_stanford_filtered_with_attribute_test", str(tmp_path)).img_dir == \
        str(tmp_path / "vg" / "VG_100K")
    with pytest.raises(KeyError, match="known names"):
        dataset_paths("VG_whatever")


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED_VG, "VG-SGG-dicts-with-attri.json")),
                    reason="needs the real VG150 vocabulary VG-SGG-dicts-with-attri.json in ../shared/vg "
                           "(beside this checkout); it is absent")
def test_real_vg150_vocabulary_loads():
    vocabulary = load_vocabulary(os.path.join(SHARED_VG, "VG-SGG-dicts-with-attri.json"))
    assert len(vocabulary.ind_to_classes) == 151 and len(vocabulary.ind_to_predicates) == 51
    assert vocabulary.ind_to_classes[0] == "__background__" == vocabulary.ind_to_predicates[0]
    assert vocabulary.ind_to_predicates[31] == "on" and vocabulary.ind_to_predicates[50] == "with"
    assert len(vocabulary.ind_to_attributes) == 201
    assert sum(vocabulary.predicate_count.values()) == 2046006


def _write_loader_fixture(data_dir) -> None:
    """Six train-pool images (2 of them val) with three predicates on one pair, three portrait test images."""
    pair = [box(0, 0, 400, 300), box(200, 200, 1000, 700)]
    images = [FixtureImage(split=0, width=64 + 8 * i, height=48, boxes=pair, labels=[1, 2],
                           relations=[(0, 1, 3), (0, 1, 2), (0, 1, 1)]) for i in range(6)]
    images += [FixtureImage(split=2, width=48, height=64, boxes=pair, labels=[2, 3], relations=[(1, 0, 1)])] * 3
    write_fixture(str(data_dir), images)


def _loader_config(data_dir, *overrides: str):
    return load_config(opts=["DATASETS.DATA_DIR", str(data_dir), "DATASETS.NUM_VAL_IM", "2",
                             "MODEL.RELATION_ON", "True", "INPUT.MIN_SIZE_TRAIN", "(96,)",
                             "INPUT.MAX_SIZE_TRAIN", "160", "INPUT.MIN_SIZE_TEST", "96",
                             "INPUT.MAX_SIZE_TEST", "160", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "5",
                             "TEST.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0", *overrides])


def test_make_data_loader_end_to_end(tmp_path):
    _write_loader_fixture(tmp_path)
    cfg = _loader_config(tmp_path)
    assert len(build_dataset(cfg, "train")) == 4 and len(build_dataset(cfg, "val")) == 2
    batches = list(make_data_loader(cfg, "train"))
    assert len(batches) == 5
    images_batch, targets, indices = batches[0]
    assert images_batch.tensors.shape[0] == 2 and images_batch.tensors.shape[2] % 32 == 0
    assert min(images_batch.image_sizes[0]) == 96
    assert targets[0]["relation"].shape == (2, 2) and len(indices) == 2
    test_batches = list(make_data_loader(cfg, "test"))
    assert [len(b[2]) for b in test_batches] == [2, 1]
    # portrait 48x64 -> 96x128; boxes scale by 2 from the original frame (64/1024 * 2)
    assert test_batches[0][0].image_sizes[0] == (128, 96)
    assert test_batches[0][1][0]["boxes"][0].tolist() == pytest.approx([0.0, 0.0, 50.0, 37.5])


def _global_generator_states() -> tuple[torch.Tensor, np.ndarray]:
    return torch.get_rng_state(), np.random.get_state()[1].copy()


def test_loader_samples_depend_on_seed_epoch_and_index_only(tmp_path):
    """Random resize, flips, jitter, duplicate filter and relation overwrite: the same batches whatever the
    global generators hold and however many workers load them, and the global generators do not move."""
    _write_loader_fixture(tmp_path)
    runs = []
    for global_seed, num_workers in ((0, 0), (1, 0), (2, 2)):
        cfg = _loader_config(tmp_path, "INPUT.MIN_SIZE_TRAIN", "(64, 80, 96)", "INPUT.BRIGHTNESS", "0.5",
                             "INPUT.VERTICAL_FLIP_PROB_TRAIN", "0.5", "SOLVER.MAX_ITER", "6",
                             "DATALOADER.NUM_WORKERS", str(num_workers))
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        before = _global_generator_states()
        runs.append(list(make_data_loader(cfg, "train")))
        after = _global_generator_states()
        assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    for other in runs[1:]:
        for (images, targets, indices), (other_images, other_targets, other_indices) in zip(runs[0], other):
            assert indices == other_indices and torch.equal(images.tensors, other_images.tensors)
            for target, other_target in zip(targets, other_targets):
                assert all(torch.equal(target[key], other_target[key]) for key in target)
    sizes = {size for images, _, _ in runs[0] for size in images.image_sizes}
    assert len({min(size) for size in sizes}) > 1                                 # the resize did draw

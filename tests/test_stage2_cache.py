"""Stage 2 over cached features (tiny SynthVG, CPU): the per-image path computes what the batched forward
computes, cached stage 2 trains bit-identical weights to uncached stage 2, a stale cache is refused with its
reason and rebuilt, a damaged entry is detected and recomputed."""
from __future__ import annotations

import glob
import logging
import os

import numpy as np
import pytest
import torch

from relation_testing import SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, mode_opts, tiny_relation_config
from tool_loading import load_tool
from rebalance_hca.data import make_data_loader
from rebalance_hca.data.collate import split_image_list, to_image_list
from rebalance_hca.engine.checkpoint import Checkpointer
from rebalance_hca.engine.stage2_cache import (KEY_FILE, ClassifierInputCache, DamagedEntry, Stage2InputSource,
                                               decode_entry, encode_entry, stage2_cache_key)
from rebalance_hca.engine.stages import freeze_for_stage2, load_stage1_model
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.relation_head.relation_head import RelationHead
from rebalance_hca.modeling.scene_graph import SceneGraphModel

TRAIN = load_tool("relation_train_net")
TEST = load_tool("relation_test_net")
CONFUSION = load_tool("compute_confusion_matrix")
STAGE2_LOGGER = "rebalance_hca.engine.stage2_cache"


@pytest.fixture(scope="module")
def stage1_checkpoint(tiny_synthvg, tmp_path_factory) -> str:
    """An untrained stage-1 model (the frozen part only needs to be fixed, not good)."""
    folder = str(tmp_path_factory.mktemp("stage1"))
    torch.manual_seed(0)
    return Checkpointer(build_model(tiny_relation_config(tiny_synthvg, folder)), save_dir=folder).save("stage1", 0)


def _train_stage2(data_dir: str, output_dir: str, stage1: str, cache_dir: str, *overrides: str) -> dict:
    TRAIN.main(["--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS, *mode_opts("predcls"),
                "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir,
                "SOLVER.MAX_ITER", "6", "SOLVER.TO_VAL", "False", "SOLVER.WARMUP_ITERS", "2",
                "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True", "MODEL.PRETRAINED_MODEL_CKPT", stage1,
                "STAGE2.FEATURE_CACHE_DIR", cache_dir, *overrides, "--skip-test", "--no-resume"])
    return torch.load(os.path.join(output_dir, "model_final.pth"), map_location="cpu", weights_only=True)["model"]


def _assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert different == []


@pytest.fixture
def count_computations(monkeypatch):
    """The number of images whose classifier inputs the frozen part computed (not read from a cache)."""
    counter = {"images": 0}
    original = SceneGraphModel.frozen_classifier_inputs

    def counted(self, *args, **kwargs):
        counter["images"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SceneGraphModel, "frozen_classifier_inputs", counted)
    return counter


def _entries(cache_dir: str) -> list[str]:
    """The entries of every split's folder below ``cache_dir``."""
    return sorted(glob.glob(os.path.join(cache_dir, "*", "??", "*.bin")))


def _key_file(cache_dir: str) -> str:
    """The train split's cache_key.json below ``cache_dir`` (the only split folder there)."""
    (path,) = glob.glob(os.path.join(cache_dir, "*", KEY_FILE))
    return path


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_per_image_inputs_give_the_batched_forward_losses(tiny_synthvg, tmp_path, mode):
    torch.manual_seed(0)
    stage1 = Checkpointer(build_model(tiny_relation_config(tiny_synthvg, str(tmp_path), mode)),
                          save_dir=str(tmp_path)).save("stage1", 0)
    cfg = tiny_relation_config(tiny_synthvg, str(tmp_path), mode, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER",
                               "True", "MODEL.PRETRAINED_MODEL_CKPT", stage1,
                               "MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT", "0.3")
    model = build_model(cfg)
    load_stage1_model(model, stage1)
    freeze_for_stage2(model)
    model.train()
    images, targets, _ = next(iter(make_data_loader(cfg, "train")))
    # one image: in a batch of several, the batched forward's features depend on the padding to the largest
    # image (about 2 % of the loss here), which the per-image path leaves out by design
    height, width = images.image_sizes[0]
    image = to_image_list([images.tensors[0, :, :height, :width]], cfg.DATALOADER.SIZE_DIVISIBILITY)
    losses = {}
    for source in (None, Stage2InputSource(model, cfg.DATALOADER.SIZE_DIVISIBILITY)):
        model.stage2_inputs = source
        torch.manual_seed(3)
        losses[source is None] = model(image, targets[:1])
    # the same sampled pairs and dropout draws; the pairs' features are computed in another order
    torch.testing.assert_close(losses[False]["loss_rel"], losses[True]["loss_rel"], rtol=1e-4, atol=1e-5)
    assert float(losses[False]["loss_refine_obj"]) == 0.0


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_cache_returns_the_computed_inputs(tiny_synthvg, tmp_path, mode):
    cfg = tiny_relation_config(tiny_synthvg, str(tmp_path), mode, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER",
                               "True")
    torch.manual_seed(0)
    model = build_model(cfg)
    freeze_for_stage2(model)
    images, targets, _ = next(iter(make_data_loader(cfg, "train")))
    height, width = images.image_sizes[1]
    image, target = images.tensors[1, :, :height, :width], targets[1]
    computed = Stage2InputSource(model, cfg.DATALOADER.SIZE_DIVISIBILITY)(image, target)
    cache = ClassifierInputCache(str(tmp_path / "cache"), stage2_cache_key(cfg, model, "train"))
    cache.open()
    source = Stage2InputSource(model, cfg.DATALOADER.SIZE_DIVISIBILITY, cache)
    for expected_hits in (0, 1):
        inputs = source(image, target)
        assert source.hits == expected_hits and source.misses == 1
        assert len(inputs.tensors()) == len(computed.tensors()) and all(
            torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(inputs.tensors(), computed.tensors()))
    assert len(computed.classifier_inputs[0]) == len(target["boxes"]) ** 2
    assert len(computed.object_logits) == len(target["boxes"])


@pytest.mark.slow
@pytest.mark.parametrize("flip", ["0.0", "0.5"])
def test_cached_stage2_is_bit_identical_to_uncached(tiny_synthvg, tmp_path, stage1_checkpoint, count_computations,
                                                    flip):
    cache_dir = str(tmp_path / "cache")
    train = lambda name, *extra: _train_stage2(tiny_synthvg, str(tmp_path / name), stage1_checkpoint, cache_dir,
                                               "INPUT.HORIZONTAL_FLIP_PROB_TRAIN", flip, *extra)
    uncached = train("uncached", "STAGE2.FEATURE_CACHE", "False")
    assert _entries(cache_dir) == []
    computed_uncached = count_computations["images"]
    filled = train("filled")
    assert _entries(cache_dir) and count_computations["images"] - computed_uncached == len(_entries(cache_dir))
    _assert_same_weights(uncached, filled)
    before = count_computations["images"]
    reread = train("reread")
    assert count_computations["images"] == before  # every view came from the cache
    _assert_same_weights(uncached, reread)


@pytest.mark.slow
def test_stale_cache_is_refused_with_its_reason_and_rebuilt(tiny_synthvg, tmp_path, stage1_checkpoint, caplog,
                                                            count_computations):
    cache_dir = str(tmp_path / "cache")
    _train_stage2(tiny_synthvg, str(tmp_path / "first"), stage1_checkpoint, cache_dir)
    with open(_key_file(cache_dir), encoding="utf-8") as stream:
        first_key = stream.read()
    state = torch.load(stage1_checkpoint, map_location="cpu", weights_only=False)
    name = next(key for key in state["model"] if key.endswith("post_cat.weight"))
    state["model"][name] = state["model"][name] + 1.0
    other_stage1 = str(tmp_path / "other_stage1.pth")
    torch.save(state, other_stage1)
    caplog.set_level(logging.INFO, logger=STAGE2_LOGGER)
    before = count_computations["images"]
    _train_stage2(tiny_synthvg, str(tmp_path / "second"), other_stage1, cache_dir)
    refusals = [record.getMessage() for record in caplog.records if "Refusing" in record.getMessage()]
    assert len(refusals) == 1 and "frozen_weights" in refusals[0] and "\n" not in refusals[0]
    assert "config_digest" not in refusals[0]  # MODEL.PRETRAINED_MODEL_CKPT reaches the cache through the weights
    assert count_computations["images"] - before == len(_entries(cache_dir)) > 0  # nothing of the old key was read
    with open(_key_file(cache_dir), encoding="utf-8") as stream:
        assert stream.read() != first_key

    caplog.clear()
    _train_stage2(tiny_synthvg, str(tmp_path / "third"), other_stage1, cache_dir, "INPUT.PIXEL_STD",
                  "[1.0, 1.0, 1.0]")
    refusals = [record.getMessage() for record in caplog.records if "Refusing" in record.getMessage()]
    assert len(refusals) == 1 and "config_digest" in refusals[0] and "frozen_weights" not in refusals[0]


@pytest.mark.slow
def test_truncated_entry_is_detected_and_recomputed(tiny_synthvg, tmp_path, stage1_checkpoint, caplog,
                                                    count_computations):
    cache_dir = str(tmp_path / "cache")
    reference = _train_stage2(tiny_synthvg, str(tmp_path / "first"), stage1_checkpoint, cache_dir)
    victim = _entries(cache_dir)[0]
    size = os.path.getsize(victim)
    with open(victim, "r+b") as stream:
        stream.truncate(size // 2)
    caplog.set_level(logging.INFO, logger=STAGE2_LOGGER)
    before = count_computations["images"]
    again = _train_stage2(tiny_synthvg, str(tmp_path / "second"), stage1_checkpoint, cache_dir)
    damaged = [record.getMessage() for record in caplog.records if "damaged" in record.getMessage()]
    assert damaged and all(victim in message and "where the header says" in message for message in damaged)
    assert count_computations["images"] - before == len(damaged)
    assert os.path.getsize(victim) == size
    _assert_same_weights(reference, again)


def test_entry_encoding_round_trip_and_damage():
    tensors = (torch.randn(6, 5), torch.arange(12).reshape(6, 2), torch.randn(6, 3).to(torch.bfloat16),
               torch.zeros(0, 4))
    blob = bytearray(encode_entry(tensors, "key"))
    decoded = decode_entry(bytearray(blob), "key")
    assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(tensors, decoded))
    with pytest.raises(DamagedEntry, match="another cache key"):
        decode_entry(bytearray(blob), "other key")
    with pytest.raises(DamagedEntry, match="where the header says"):
        decode_entry(blob[:-1], "key")
    corrupt = bytearray(blob)
    corrupt[-3] ^= 0xFF
    with pytest.raises(DamagedEntry, match="CRC-32"):
        decode_entry(corrupt, "key")
    with pytest.raises(DamagedEntry, match="no entry header"):
        decode_entry(bytearray(b"abc"), "key")


def _confusion_file(folder, num_predicates: int) -> str:
    """A confusion-matrix .npy with off-diagonal counts (any informative matrix serves these tests)."""
    generator = np.random.default_rng(0)
    path = str(folder / "confusion.npy")
    np.save(path, generator.integers(0, 20, size=(num_predicates, num_predicates)).astype(np.float32))
    return path


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_predictions_over_frozen_outputs_equal_the_forward_bitwise(tiny_synthvg, tmp_path, mode):
    """The eval path over a source (cached or not) predicts what the test-time forward of each image alone
    predicts, bit for bit, with the transfer classifier and test pairs split over several chunks."""
    confusion = _confusion_file(tmp_path, 22)
    cfg = tiny_relation_config(tiny_synthvg, str(tmp_path), mode, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER",
                               "True", "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True",
                               "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX", confusion,
                               "TEST.RELATION.PAIRS_PER_CHUNK", "7")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    images, targets, _ = next(iter(make_data_loader(cfg, "test")))
    source = Stage2InputSource(model, cfg.DATALOADER.SIZE_DIVISIBILITY)
    for image, target in zip(split_image_list(images, cfg.DATALOADER.SIZE_DIVISIBILITY), targets):
        assert len(target["boxes"]) ** 2 > 7
        with torch.no_grad():
            (expected,) = model(image, [target])
            model.stage2_inputs = source
            (over_frozen,) = model(image, [target])
            model.stage2_inputs = None
        assert expected.keys() == over_frozen.keys()
        assert all(torch.equal(expected[key], over_frozen[key]) for key in expected)
    assert source.misses == len(targets)


def _count_calls(monkeypatch, owner, name: str, counter: dict) -> None:
    original = getattr(owner, name)

    def counted(self, *args, **kwargs):
        counter[name] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, counted)


def _run(tool, data_dir: str, output_dir: str, *overrides: str):
    return tool.main(["--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS, *mode_opts("predcls"),
                      "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"),
                      "OUTPUT_DIR", output_dir, "INPUT.HORIZONTAL_FLIP_PROB_TRAIN", "0.0", *overrides])


@pytest.mark.slow
def test_confusion_test_and_validation_passes_share_the_cache_with_stage2(tiny_synthvg, tmp_path, monkeypatch):
    """The stage-1 model's confusion-matrix pass fills the train entries stage 2 reads, its test pass the test
    entries stage 2's test reads, and stage 2's first validation the entries its second one reads: with the
    cache on, stage 2 computes the frozen part only for the first validation; the confusion matrix, the
    stage-2 weights and the test metrics are bit-identical to a run without the cache."""
    calls = {"frozen_classifier_inputs": 0, "forward": 0}
    _count_calls(monkeypatch, SceneGraphModel, "frozen_classifier_inputs", calls)
    _count_calls(monkeypatch, RelationHead, "forward", calls)
    stage1_dir = tmp_path / "stage1"
    stage1_dir.mkdir()
    torch.manual_seed(0)
    stage1 = Checkpointer(build_model(tiny_relation_config(tiny_synthvg, str(stage1_dir))),
                          save_dir=str(stage1_dir)).save("model_final", 0)
    confusion = {}
    for cached in ("False", "True"):
        path = str(tmp_path / f"confusion_{cached}.npy")
        _run(CONFUSION, tiny_synthvg, str(stage1_dir), "MODEL.WEIGHT", stage1, "STAGE2.FEATURE_CACHE", cached,
             "--output", path)
        confusion[cached] = np.load(path)
    assert np.array_equal(confusion["False"], confusion["True"]) and confusion["True"].any()
    train_entries = _entries(str(stage1_dir / "stage2_feature_cache"))
    assert calls["frozen_classifier_inputs"] == len(train_entries) > 0  # the cache pass only
    _run(TEST, tiny_synthvg, str(stage1_dir / "test"), "MODEL.WEIGHT", stage1, "STAGE2.FEATURE_CACHE", "True")
    test_entries = len(_entries(str(stage1_dir / "stage2_feature_cache"))) - len(train_entries)
    assert test_entries > 0

    stage2 = ["MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True", "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER",
              "True", "MODEL.PRETRAINED_MODEL_CKPT", stage1, "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX",
              str(tmp_path / "confusion_True.npy"), "SOLVER.MAX_ITER", "4", "SOLVER.WARMUP_ITERS", "2",
              "SOLVER.TO_VAL", "True", "SOLVER.VAL_PERIOD", "2", "--no-resume"]
    results, weights = {}, {}
    for cached in ("False", "True"):
        before = dict(calls)
        output = tmp_path / f"stage2_{cached}"
        results[cached] = _run(TRAIN, tiny_synthvg, str(output), *stage2, "STAGE2.FEATURE_CACHE", cached)
        weights[cached] = torch.load(output / "model_final.pth", map_location="cpu", weights_only=True)["model"]
        computed = {name: calls[name] - before[name] for name in calls}
        if cached == "False":
            assert computed["forward"] > 0  # validation and test ran the usual forward
        else:
            val_entries = glob.glob(str(stage1_dir / "stage2_feature_cache" / "*val*" / "??" / "*.bin"))
            # the first validation computes the val split, the second and the train and test passes read
            assert computed == {"frozen_classifier_inputs": len(val_entries), "forward": 0} and val_entries
    _assert_same_weights(weights["False"], weights["True"])
    assert results["True"]["sgg"] and results["False"]["sgg"] == results["True"]["sgg"]
    assert results["False"]["report"] == results["True"]["report"]

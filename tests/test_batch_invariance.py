"""Test metrics do not depend on TEST.IMS_PER_BATCH or on the number of processes (TEST.BATCH_INVARIANT, on by
default): a tiny SynthVG model gives the same results file (R, ng-R, mR, ng-mR, zR, A, F, per predicate,
detection) and bit-identical predictions with batches of 1, 2 and 4 images and with 2 gloo processes, in
PredCls and SGDet; with TEST.BATCH_INVARIANT False a batch of 4 changes the predictions.

PredCls tests a model trained for a few iterations: an untrained head ranks pairs almost by its frequency bias,
so batching barely moves its metrics. SGDet tests an untrained (seeded) model: its random detector finds no GT
object (recall 0 whatever the batch), so there the bit-identical predictions carry the test.

On the CPU the math libraries' rounding also depends on the number of intra-op threads, and a 2-process run
gives each process half of the cores: the one-process runs here use that many threads too
(docs/training.md#batch-invariant-testing).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from detector_testing import random_images, tiny_config
from relation_testing import ROOT, SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, mode_opts, tiny_relation_config
from tool_loading import load_tool
from rebalance_hca.data.collate import split_image_list, to_image_list
from rebalance_hca.engine.batch_invariance import predict_batch
from rebalance_hca.engine.checkpoint import Checkpointer
from rebalance_hca.engine.launch import cpu_threads_per_process
from rebalance_hca.evaluation import load_predictions
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.detector import build_detector

TEST = load_tool("relation_test_net")
TEST_DATASET = "VG_stanford_filtered_with_attribute_test"
TRAIN = load_tool("relation_train_net")
PROCESSES = 2
TRAINING_ITERATIONS = 5


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _args(data_dir: str, output_dir: str, mode: str, *overrides: str) -> list[str]:
    return ["--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS, *mode_opts(mode),
            "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir,
            *overrides]


def _test_args(data_dir: str, output_dir: str, mode: str, weights: str, images_per_batch: int,
               *overrides: str) -> list[str]:
    """The test tool's arguments; the stage-2 feature cache off, so that every run computes the model's forward
    (with it on, the runs after the first would read the per-image outputs the first one stored)."""
    return _args(data_dir, output_dir, mode, "MODEL.WEIGHT", weights, "TEST.IMS_PER_BATCH", str(images_per_batch),
                 "STAGE2.FEATURE_CACHE", "False", *overrides)


def _outcome(output_dir: str) -> tuple[dict, dict]:
    """(the results file without its own path entries, the predictions file's arrays by image)."""
    folder = os.path.join(output_dir, "inference", TEST_DATASET)
    with open(os.path.join(folder, "test_results.json"), encoding="utf-8") as stream:
        results = json.load(stream)
    results.pop("predictions")
    saved = load_predictions(os.path.join(folder, "predictions.npz"))
    return results, dict(zip(saved["image_ids"].tolist(), saved["predictions"]))


def _differing_images(expected: dict, actual: dict) -> list[int]:
    """Images whose predictions are not bit-identical (every field of the predictions file)."""
    assert expected.keys() == actual.keys()
    return [image for image, prediction in expected.items()
            if not all(np.array_equal(array, actual[image][field]) for field, array in prediction.items())]


SIZE_DIVISIBILITY = 32
IMAGE_SIZES = [(70, 100), (128, 150), (96, 160)]


def test_split_image_list_gives_each_image_as_the_loader_pads_it_alone():
    images = [torch.randn(3, height, width, generator=torch.Generator().manual_seed(height))
              for height, width in IMAGE_SIZES]
    for single, image in zip(split_image_list(to_image_list(images, SIZE_DIVISIBILITY), SIZE_DIVISIBILITY), images):
        alone = to_image_list([image], SIZE_DIVISIBILITY)
        assert single.image_sizes == alone.image_sizes
        assert torch.equal(single.tensors, alone.tensors)


def test_detections_of_an_image_do_not_depend_on_its_batch():
    torch.manual_seed(0)
    detector = build_detector(tiny_config()).eval()
    batch = random_images(IMAGE_SIZES)
    with torch.no_grad():
        alone = [predict_batch(detector, single, None, True, SIZE_DIVISIBILITY)[0]
                 for single in split_image_list(batch, SIZE_DIVISIBILITY)]
        invariant = predict_batch(detector, batch, None, True, SIZE_DIVISIBILITY)
        padded = predict_batch(detector, batch, None, False, SIZE_DIVISIBILITY)
    for expected, actual in zip(alone, invariant):
        assert torch.equal(expected.boxes, actual.boxes) and torch.equal(expected.scores, actual.scores)
    assert not all(torch.equal(expected.scores, actual.scores) for expected, actual in zip(alone, padded))


def _model_weights(data_dir: str, folder: str, mode: str) -> str:
    """PredCls: a tiny model trained TRAINING_ITERATIONS iterations; SGDet: the tiny model as built with seed 0."""
    if mode == "predcls":
        TRAIN.main(_args(data_dir, folder, mode, "SOLVER.MAX_ITER", str(TRAINING_ITERATIONS),
                         "SOLVER.WARMUP_ITERS", "2", "SOLVER.TO_VAL", "False", "--skip-test"))
        return os.path.join(folder, "model_final.pth")
    torch.manual_seed(0)
    model = build_model(tiny_relation_config(data_dir, folder, mode))
    return Checkpointer(model, save_dir=folder).save("model", 0)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["predcls", "sgdet"])
def test_results_do_not_depend_on_the_batch_size_or_the_number_of_processes(tiny_synthvg, tmp_path, monkeypatch,
                                                                            mode):
    weights = _model_weights(tiny_synthvg, str(tmp_path / "model"), mode)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(PROCESSES))
    threads = cpu_threads_per_process()
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    outcomes = {}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for images_per_batch in (1, 2, 4):
            output = str(tmp_path / f"batch{images_per_batch}")
            TEST.main(_test_args(tiny_synthvg, output, mode, weights, images_per_batch))
            outcomes[f"TEST.IMS_PER_BATCH {images_per_batch}"] = _outcome(output)
        output = str(tmp_path / "padded_batch4")
        TEST.main(_test_args(tiny_synthvg, output, mode, weights, 4, "TEST.BATCH_INVARIANT", "False"))
        _, padded_batch_predictions = _outcome(output)
    finally:
        torch.set_num_threads(previous_threads)

    output = str(tmp_path / "processes")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    result = subprocess.run([torchrun, "--nproc_per_node", str(PROCESSES), "--master_addr", "127.0.0.1",
                             "--master_port", str(_free_port()), "tools/relation_test_net.py",
                             *_test_args(tiny_synthvg, output, mode, weights, 2 * PROCESSES)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes[f"{PROCESSES} processes"] = _outcome(output)

    expected_results, expected_predictions = outcomes.pop("TEST.IMS_PER_BATCH 1")
    assert (expected_results["R@100"] > 0.0) == (mode == "predcls")
    for run, (results, predictions) in outcomes.items():
        assert results == expected_results, run
        assert _differing_images(expected_predictions, predictions) == [], run
    assert _differing_images(expected_predictions, padded_batch_predictions) != []

"""Relation training and testing through the real entry points on a tiny SynthVG (CPU): the two-stage recipe on
every context, a 2-process gloo test, exact resume after SIGKILL, a non-finite loss, and bad configuration."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from relation_testing import RECIPE_CONTEXTS, ROOT, RecipeContext, free_port, mode_opts
from tool_loading import load_tool
from rebalance_hca.config import load_config
from rebalance_hca.engine.checkpoint import LAST_CHECKPOINT_FILE
from rebalance_hca.utils.cli import UserInputError

TEST_DATASET = "VG_stanford_filtered_with_attribute_test"
PYTHON = sys.executable


TRAIN = load_tool("relation_train_net")
TEST = load_tool("relation_test_net")
CONFUSION = load_tool("compute_confusion_matrix")


def _args(data_dir: str, output_dir: str, *overrides: str,
          recipe: RecipeContext = RECIPE_CONTEXTS["hca"]) -> list[str]:
    """The tiny PredCls command line of ``recipe``'s context (the synthetic HCA config by default)."""
    return ["--config-file", recipe.config_file, *recipe.tiny_opts, *recipe.overrides, *mode_opts("predcls"),
            "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir,
            "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "3", "SOLVER.VAL_PERIOD", "3",
            "SOLVER.WARMUP_ITERS", "2", "TEST.IMS_PER_BATCH", "2", *overrides]


def _results(output_dir: str, split: str = "test") -> dict:
    path = os.path.join(output_dir, "inference", TEST_DATASET, f"{split}_results.json")
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def _weights(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
@pytest.mark.parametrize("context", list(RECIPE_CONTEXTS))
def test_two_stage_recipe_through_the_entry_points(tiny_synthvg, tmp_path, context):
    """Stage 1 -> confusion matrix -> stage 2 -> test for every context of RECIPE_CONTEXTS."""
    recipe = RECIPE_CONTEXTS[context]

    def args(output_dir: str, *overrides: str) -> list[str]:
        return _args(tiny_synthvg, output_dir, *overrides, recipe=recipe)

    stage1 = str(tmp_path / "stage1")
    evaluation = TRAIN.main(args(stage1))
    assert 0.0 <= evaluation["sgg"]["R@50"] <= 1.0
    files = set(os.listdir(stage1))
    assert {"model_0000003.pth", "model_final.pth", "model_best.pth", LAST_CHECKPOINT_FILE, "config.yml",
            "log.txt"} <= files
    assert open(os.path.join(stage1, LAST_CHECKPOINT_FILE)).read() == "model_final.pth"
    config_text = open(os.path.join(stage1, "config.yml")).read()
    cfg = load_config(recipe.config_file, [*recipe.tiny_opts, *recipe.overrides])
    predictor = cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR
    assert config_text.startswith(f"# predcls with {predictor}\n# stage 1")
    for name in ("predictions.npz", "test_report.txt", "test_results.json", "test_per_predicate_recall.png"):
        assert os.path.isfile(os.path.join(stage1, "inference", TEST_DATASET, name))

    confusion_path = CONFUSION.main(args(stage1))
    confusion = np.load(confusion_path)
    assert confusion.shape == (22, 22) and confusion.sum() > 0
    assert confusion[0].sum() == 0 and confusion[:, 0].sum() == 0

    stage2 = str(tmp_path / "stage2")
    stage2_opts = ["MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True",
                   "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True",
                   "MODEL.PRETRAINED_MODEL_CKPT", os.path.join(stage1, "model_final.pth"),
                   "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX", confusion_path]
    TRAIN.main(args(stage2, *stage2_opts, "--skip-test"))
    stage1_weights = _weights(os.path.join(stage1, "model_final.pth"))
    stage2_weights = _weights(os.path.join(stage2, "model_final.pth"))
    changed = {name for name, value in stage2_weights.items()
               if name not in stage1_weights or not torch.equal(value, stage1_weights[name])}
    assert changed and all(".clean_classifier." in name for name in changed)
    assert {name.split(".clean_classifier.")[1] for name in changed} == recipe.classifier_parameters
    config_text = open(os.path.join(stage2, "config.yml")).read()
    assert "# stage 2" in config_text and confusion_path in config_text

    tested = TEST.main(args(stage2, *stage2_opts))
    assert 0.0 <= tested["sgg"]["mR@50"] <= 1.0
    assert _results(stage2)["weights"] == os.path.join(stage2, "model_final.pth")


@pytest.mark.slow
def test_frequency_baseline_is_tested_without_weights(tiny_synthvg, tmp_path):
    output = str(tmp_path / "frequency")
    evaluation = TEST.main(_args(tiny_synthvg, output, "MODEL.ROI_RELATION_HEAD.PREDICTOR",
                                 "FrequencyBaselinePredictor"))
    assert evaluation["sgg"]["R@50"] > 0.05


@pytest.mark.slow
def test_predictions_are_reused_only_for_the_same_weights(tiny_synthvg, tmp_path, caplog):
    output = str(tmp_path / "run")
    TRAIN.main(_args(tiny_synthvg, output, "SOLVER.MAX_ITER", "3", "SOLVER.TO_VAL", "False", "--skip-test"))
    cached = ["TEST.ALLOW_LOAD_FROM_CACHE", "True"]
    first = TEST.main(_args(tiny_synthvg, output, *cached))
    caplog.set_level("INFO")
    second = TEST.main(_args(tiny_synthvg, output, *cached))
    assert second["sgg"] == first["sgg"]
    # model_0000003.pth holds the same weights as model_final.pth, but it is another file: predicted again
    other = TEST.main(_args(tiny_synthvg, output, *cached, "MODEL.WEIGHT", os.path.join(output, "model_0000003.pth")))
    assert other["sgg"] == first["sgg"]
    log = open(os.path.join(output, "log.txt")).read()
    assert log.count("Reusing the predictions") == 1 and "Not reusing" in log


@pytest.mark.slow
def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tiny_synthvg, tmp_path, monkeypatch):
    from rebalance_hca.modeling.relation_head.relation_head import RelationHead

    original, calls = RelationHead._losses, []

    def nan_from_the_fifth_step(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls.append(1)
        return {**losses, "loss_rel": losses["loss_rel"] * float("nan")} if len(calls) >= 5 else losses

    monkeypatch.setattr(RelationHead, "_losses", nan_from_the_fifth_step)
    output = str(tmp_path / "run")
    with pytest.raises(FloatingPointError, match="not finite at iteration 5"):
        TRAIN.main(_args(tiny_synthvg, output, "SOLVER.TO_VAL", "False"))
    assert open(os.path.join(output, LAST_CHECKPOINT_FILE)).read() == "model_0000003.pth"
    assert not os.path.exists(os.path.join(output, "model_final.pth"))
    assert _weights(os.path.join(output, "model_0000003.pth"))  # readable


# reaches_output_dir: whether the error comes after the run took OUTPUT_DIR (config.yml and log.txt written),
# or while the configuration is read, before anything is written there.
@pytest.mark.parametrize("overrides, message, reaches_output_dir", [
    (["MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True"], "needs the stage-1 model", True),
    (["MODEL.ROI_RELATION_HEAD.PREDICTOR", "NoSuchPredictor"], "not a registered predictor", True),
    (["MODEL.PRETRAINED_DETECTOR_CKPT", "{detector}"], "does not fit the model", True),
    (["MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX", "{confusion}"], r"expected shape \(22, 22\)", True),
    (["MODEL.NO_SUCH_KEY", "1"], "unknown config key MODEL.NO_SUCH_KEY", False),
])
def test_bad_configuration_fails_before_training(tiny_synthvg, tmp_path, overrides, message, reaches_output_dir):
    detector = tmp_path / "other_detector.pth"
    torch.save({"model": {"backbone.weight": torch.zeros(1)}}, detector)
    confusion = tmp_path / "confusion.npy"
    np.save(confusion, np.ones((51, 51)))
    overrides = [value.format(detector=detector, confusion=confusion) for value in overrides]
    output = str(tmp_path / "run")
    with pytest.raises(UserInputError, match=message):
        TRAIN.main(_args(tiny_synthvg, output, *overrides))
    if reaches_output_dir:
        written = os.listdir(output)
        assert "config.yml" in written
        assert [name for name in written if name.endswith(".pth")] == []
    else:
        assert not os.path.exists(output)


def test_unwritable_output_dir_is_one_line_and_exit_code_2(tiny_synthvg, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = subprocess.run([PYTHON, "tools/relation_train_net.py", *_args(tiny_synthvg, str(blocker / "run"))],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: OUTPUT_DIR") and "Traceback" not in result.stderr


def _train_command(data_dir: str, output_dir: str, *overrides: str) -> list[str]:
    return [PYTHON, "tools/relation_train_net.py", *_args(data_dir, output_dir, "SOLVER.MAX_ITER", "12",
                                                          "SOLVER.TO_VAL", "False", "--skip-test", *overrides)]


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_to_the_uninterrupted_weights(tiny_synthvg, tmp_path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = str(tmp_path / "straight")
    subprocess.run(_train_command(tiny_synthvg, straight), cwd=ROOT, env=environment, check=True,
                   capture_output=True, timeout=600)
    killed = str(tmp_path / "killed")
    process = subprocess.Popen(_train_command(tiny_synthvg, killed), cwd=ROOT, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = os.path.join(killed, LAST_CHECKPOINT_FILE)
    deadline = time.time() + 300
    while not os.path.exists(pointer) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(killed, "model_final.pth")), "killed too late to test resume"
    subprocess.run(_train_command(tiny_synthvg, killed), cwd=ROOT, env=environment, check=True,
                   capture_output=True, timeout=600)
    log = open(os.path.join(killed, "log.txt")).read()
    assert "Resumed from" in log
    reference, resumed = (_weights(os.path.join(folder, "model_final.pth")) for folder in (straight, killed))
    assert reference.keys() == resumed.keys()
    for name, value in reference.items():
        assert torch.equal(value, resumed[name]), name


@pytest.mark.slow
def test_two_gloo_processes_give_the_numbers_of_one(tiny_synthvg, tmp_path):
    output = str(tmp_path / "run")
    TRAIN.main(_args(tiny_synthvg, output, "SOLVER.MAX_ITER", "3", "SOLVER.TO_VAL", "False", "--skip-test"))
    weights = os.path.join(output, "model_final.pth")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    subprocess.run([PYTHON, "tools/relation_test_net.py", *_args(tiny_synthvg, one, "MODEL.WEIGHT", weights,
                                                                 "TEST.IMS_PER_BATCH", "1")],
                   cwd=ROOT, env=environment, check=True, capture_output=True, timeout=600)
    torchrun = os.path.join(os.path.dirname(PYTHON), "torchrun")
    result = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()),
                             "tools/relation_test_net.py", *_args(tiny_synthvg, two, "MODEL.WEIGHT", weights,
                                                                  "TEST.IMS_PER_BATCH", "2")],
                            cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    single, double = _results(one), _results(two)
    for key, value in single.items():
        if key.startswith(("R@", "mR@", "ng-R@", "A@", "zR@")):
            assert double[key] == value, key

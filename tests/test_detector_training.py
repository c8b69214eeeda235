"""Detector pretraining end to end on SynthVG with tools/detector_pretrain_net.py (CPU, a few minutes).

Measured on a 2-core x86_64 CPU (about 2 minutes): 300 iterations of 4 images on a 400-image SynthVG
bring the median loss from about 1.7 (iteration 20) to about 0.9 (iteration 300) and give mAP@0.5 of
0.13-0.23 on SynthVG val and test (SEED 20: 0.142 / 0.134; SEED 1: 0.227 / 0.228), against 0.0002 for the
untrained detector. The floors below are set well under that.
"""
from __future__ import annotations

import os
import re

import pytest
import torch

from tool_loading import load_tool
from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg
from rebalance_hca.engine.checkpoint import LAST_CHECKPOINT_FILE
from rebalance_hca.utils.cli import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "synthetic", "detector_R18_FPN.yaml")
TEST_DATASET = "VG_stanford_filtered_with_attribute_test"
MAP_FLOOR = 0.04
LOG_LINE = re.compile(r"eta: \d+:\d\d:\d\d  iter: (\d+)  loss: ([\d.]+) \(([\d.]+)\)  .*"
                      r"  lr: \d+\.\d{6}  max mem: \d+$")


TOOL = load_tool("detector_pretrain_net")


@pytest.fixture(scope="module")
def synthvg(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("synthvg")
    write_synthvg(str(root), SynthVGOptions(num_images=400, seed=0))
    return str(root)


def _args(data_dir: str, output_dir: str, *overrides: str) -> list[str]:
    return ["--config-file", CONFIG, "DATASETS.DATA_DIR", data_dir, "DATASETS.NUM_VAL_IM", "60",
            "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", output_dir, *overrides]


def _logged_losses(output_dir: str) -> dict[int, float]:
    """iteration -> median loss from the SGB log lines of OUTPUT_DIR/log.txt."""
    with open(os.path.join(output_dir, "log.txt"), encoding="utf-8") as stream:
        matches = [LOG_LINE.search(line) for line in stream]
    return {int(m.group(1)): float(m.group(2)) for m in matches if m}


@pytest.mark.slow
def test_short_pretraining_lowers_the_loss_and_reaches_a_nontrivial_map(synthvg, tmp_path):
    output_dir = str(tmp_path / "run")
    result = TOOL.main(_args(synthvg, output_dir, "SOLVER.MAX_ITER", "300", "SOLVER.STEPS", "(250,)",
                             "SOLVER.VAL_PERIOD", "150", "SOLVER.CHECKPOINT_PERIOD", "150"))
    assert set(result) == {TEST_DATASET}
    assert result[TEST_DATASET] >= MAP_FLOOR
    losses = _logged_losses(output_dir)
    assert sorted(losses) == list(range(20, 301, 20))
    assert losses[300] < 0.7 * losses[20]
    files = set(os.listdir(output_dir))
    assert {"model_0000150.pth", "model_0000300.pth", "model_final.pth", LAST_CHECKPOINT_FILE, "config.yml",
            "log.txt"} <= files
    assert any(name.startswith("events.out.tfevents") for name in files)
    assert os.path.isfile(os.path.join(output_dir, "inference", TEST_DATASET, "detection_map.json"))
    with open(os.path.join(output_dir, "log.txt"), encoding="utf-8") as stream:
        validations = [float(v) for v in re.findall(r"Validation Result: ([\d.]+)", stream.read())]
    assert len(validations) == 2 and validations[-1] >= MAP_FLOOR


@pytest.fixture(scope="module")
def resume_synthvg(tmp_path_factory) -> str:
    """About 20 train images of about 96 px: a few iterations cross an epoch boundary."""
    root = tmp_path_factory.mktemp("resume_synthvg")
    write_synthvg(str(root), SynthVGOptions(num_images=32, seed=0, image_size=96))
    return str(root)


def _resume_args(data_dir: str, output_dir: str, max_iter: int, num_workers: int) -> list[str]:
    """Random resize, flips and colour jitter on small images, two images per batch, no validation."""
    return ["--config-file", CONFIG, "DATASETS.DATA_DIR", data_dir, "DATASETS.NUM_VAL_IM", "4",
            "DATALOADER.NUM_WORKERS", str(num_workers), "OUTPUT_DIR", output_dir,
            "INPUT.MIN_SIZE_TRAIN", "(64, 80, 96)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.BRIGHTNESS", "0.3",
            "INPUT.VERTICAL_FLIP_PROB_TRAIN", "0.5", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", str(max_iter),
            "SOLVER.WARMUP_ITERS", "2", "SOLVER.CHECKPOINT_PERIOD", "100", "SOLVER.TO_VAL", "False", "--skip-test"]


RESUME_AT, RESUME_MAX_ITER = 10, 13  # an epoch is 8 batches: resume inside the second


@pytest.fixture(scope="module")
def uninterrupted_weights(resume_synthvg, tmp_path_factory) -> dict[str, torch.Tensor]:
    output_dir = str(tmp_path_factory.mktemp("uninterrupted"))
    TOOL.main(_resume_args(resume_synthvg, output_dir, RESUME_MAX_ITER, num_workers=0))
    return torch.load(os.path.join(output_dir, "model_final.pth"), weights_only=True)["model"]


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 1])
def test_resumed_run_reproduces_the_uninterrupted_one_exactly(resume_synthvg, uninterrupted_weights, num_workers,
                                                              tmp_path):
    """Stop after RESUME_AT iterations (augmentation, RPN/RoI sampling and an epoch boundary have run), start
    again in the same OUTPUT_DIR: every weight equals the uninterrupted run's (itself with NUM_WORKERS 0) exactly."""
    output_dir = str(tmp_path / "run")
    assert TOOL.main(_resume_args(resume_synthvg, output_dir, RESUME_AT, num_workers)) == {}
    first = torch.load(os.path.join(output_dir, "model_final.pth"), weights_only=True)
    assert first["iteration"] == RESUME_AT
    assert open(os.path.join(output_dir, LAST_CHECKPOINT_FILE)).read() == "model_final.pth"

    TOOL.main(_resume_args(resume_synthvg, output_dir, RESUME_MAX_ITER, num_workers))
    with open(os.path.join(output_dir, "log.txt"), encoding="utf-8") as stream:
        log = stream.read()
    assert f"at iteration {RESUME_AT}" in log and "Resumed from" in log
    assert f"Start training at iteration {RESUME_AT + 1} of {RESUME_MAX_ITER}" in log
    final = torch.load(os.path.join(output_dir, "model_final.pth"), weights_only=True)
    assert final["iteration"] == RESUME_MAX_ITER and final["scheduler"]["last_epoch"] == RESUME_MAX_ITER
    differences = {name: (value.double() - uninterrupted_weights[name].double()).abs().max().item()
                   for name, value in final["model"].items()}
    worst = max(differences, key=differences.get)
    assert differences[worst] == 0.0, f"{worst} differs by {differences[worst]:.3g}"


def test_cli_bad_input_gives_clear_errors(synthvg, tmp_path):
    with pytest.raises(UserInputError, match="checkpoint not found: .*missing.pth"):
        TOOL.main(_args(synthvg, str(tmp_path / "fresh"), "MODEL.WEIGHT", str(tmp_path / "missing.pth"),
                        "--skip-test"))
    with pytest.raises(UserInputError, match="MODEL.RELATION_ON False"):
        TOOL.main(_args(synthvg, str(tmp_path / "rel"), "MODEL.RELATION_ON", "True"))
    with pytest.raises(UserInputError, match="valid names"):
        TOOL.main(_args(synthvg, str(tmp_path / "body"), "MODEL.BACKBONE.CONV_BODY", "R-152-FPN"))
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match="MODEL.DEVICE cpu"):
            TOOL.main(_args(synthvg, str(tmp_path / "cuda"), "MODEL.DEVICE", "cuda"))


def test_cli_accepts_sgb_argument_shapes():
    args = TOOL.parse_args(["--config-file", "x.yaml", "--local_rank", "1", "SOLVER.MAX_ITER", "10",
                            "--skip-test", "SOLVER.STEPS", "(5, 8)"])
    assert (args.config_file, args.local_rank, args.skip_test) == ("x.yaml", 1, True)
    assert args.opts == ["SOLVER.MAX_ITER", "10", "SOLVER.STEPS", "(5, 8)"]
    assert TOOL.parse_args(["--local-rank=2"]).local_rank == 2

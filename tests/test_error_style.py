"""One error style: every bad input the tools meet is one ``error:`` line naming the file, key or path, and exit
code 2 (a full disk: exit code 1), with the traceback kept for REBALANCE_HCA_TRACEBACK=1; on a tiny SynthVG."""
from __future__ import annotations

import errno
import io
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from relation_testing import ROOT, SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, mode_opts
from tool_loading import load_tool
from rebalance_hca.config import load_config
from rebalance_hca.data import build_dataset
from rebalance_hca.engine.checkpoint import LAST_CHECKPOINT_FILE
from rebalance_hca.utils import atomic
from rebalance_hca.utils.cli import run_tool

PYTHON = sys.executable
TRAIN = load_tool("relation_train_net")
TEST = load_tool("relation_test_net")
FREQUENCY_BASELINE = ("MODEL.ROI_RELATION_HEAD.PREDICTOR", "FrequencyBaselinePredictor")


def _args(data_dir: str, output_dir: str, *overrides: str) -> list[str]:
    return ["--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS, *mode_opts("predcls"),
            "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir,
            "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.TO_VAL", "False",
            "SOLVER.WARMUP_ITERS", "2", "TEST.IMS_PER_BATCH", "2", *overrides]


def _error_lines(stderr: str) -> list[str]:
    """The ``error:`` lines of a tool's stderr (progress bars are separated by carriage returns)."""
    return [line for line in re.split(r"[\r\n]", stderr) if line.startswith("error: ")]


def _run_in_process(tool, argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, the one error line) of ``tool.main(argv)`` run as the command line runs it."""
    try:
        run_tool(lambda: tool.main(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    lines = _error_lines(stderr)
    assert len(lines) == (code != 0), stderr
    return code, lines[0] if lines else ""


def _run(argv: list[str], **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, *argv], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **environment})


@pytest.fixture
def data_copy(tiny_synthvg, tmp_path) -> str:
    """A copy of the tiny SynthVG that a test may damage."""
    root = str(tmp_path / "data")
    shutil.copytree(tiny_synthvg, root)
    return root


def _image_path(data_dir: str, split: str, index: int) -> str:
    cfg = load_config(SYNTHETIC_HCA_CONFIG, [*TINY_RELATION_OPTS, "DATASETS.DATA_DIR", data_dir])
    return build_dataset(cfg, split, with_transforms=False).image_path(index)


@pytest.fixture(scope="module")
def truncated_checkpoint(tmp_path_factory) -> str:
    """A checkpoint cut to half its bytes (as an interrupted copy leaves it)."""
    folder = tmp_path_factory.mktemp("truncated")
    stream = io.BytesIO()
    torch.save({"model": {"weight": torch.randn(64, 64)}, "iteration": 2}, stream)
    path = folder / "model_0000002.pth"
    path.write_bytes(stream.getvalue()[:len(stream.getvalue()) // 2])
    return str(path)


@pytest.mark.parametrize("tool, key", [
    (TEST, "MODEL.WEIGHT"),
    (TRAIN, "MODEL.WEIGHT"),
    (TRAIN, "MODEL.PRETRAINED_DETECTOR_CKPT"),
    (TRAIN, "MODEL.PRETRAINED_MODEL_CKPT"),
])
def test_a_truncated_checkpoint_is_one_line_naming_it(tiny_synthvg, tmp_path, capsys, truncated_checkpoint, tool,
                                                      key):
    stage = ("MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True") if key == "MODEL.PRETRAINED_MODEL_CKPT" else ()
    code, line = _run_in_process(tool, _args(tiny_synthvg, str(tmp_path / "run"), key, truncated_checkpoint, *stage),
                                 capsys)
    assert code == 2
    assert f"checkpoint {truncated_checkpoint} cannot be read (truncated" in line


@pytest.mark.slow
def test_resuming_from_a_truncated_checkpoint_is_one_line_naming_it(tiny_synthvg, tmp_path, truncated_checkpoint):
    output = tmp_path / "run"
    output.mkdir()
    shutil.copy(truncated_checkpoint, output / "model_0000002.pth")
    (output / LAST_CHECKPOINT_FILE).write_text("model_0000002.pth")
    result = _run(["tools/relation_train_net.py", *_args(tiny_synthvg, str(output))])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(
        f"error: setting up relation training: checkpoint {output / 'model_0000002.pth'} cannot be read (truncated, "
        "damaged or not a file torch.save wrote): ")


def test_a_yaml_syntax_error_is_one_line_with_file_and_line_unless_tracebacks_are_asked_for(tmp_path):
    config_file = tmp_path / "broken.yaml"
    config_file.write_text("MODEL:\n  DEVICE: cpu\nSOLVER:\n  STEPS: [1, 2\n")
    result = _run(["tools/relation_train_net.py", "--config-file", str(config_file)])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: reading the config: {config_file}: not valid YAML at line 5")
    traced = _run(["tools/relation_train_net.py", "--config-file", str(config_file)], REBALANCE_HCA_TRACEBACK="1")
    assert traced.returncode != 0 and "Traceback" in traced.stderr and "ConfigError" in traced.stderr


@pytest.mark.slow
def test_a_truncated_image_in_training_is_one_line_naming_it_also_from_a_worker(data_copy, tmp_path):
    """Every image cut to half its bytes: the first batch meets one, in a DataLoader worker process."""
    images = os.path.join(data_copy, "vg", "VG_100K")
    for name in os.listdir(images):
        path = os.path.join(images, name)
        with open(path, "rb") as stream:
            data = stream.read()
        with open(path, "wb") as stream:
            stream.write(data[:len(data) // 2])
    result = _run(["tools/relation_train_net.py", *_args(data_copy, str(tmp_path / "run"), "DATALOADER.NUM_WORKERS",
                                                          "2", "--skip-test")])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1
    assert re.fullmatch(rf"error: image is truncated \(its JPEG data ends before the end-of-image marker\): "
                        rf"{re.escape(images)}/\d+\.jpg", lines[0]), lines[0]


def test_a_missing_or_undecodable_image_in_testing_is_one_line_naming_it(data_copy, tmp_path, capsys):
    missing, corrupt = _image_path(data_copy, "test", 1), _image_path(data_copy, "test", 0)
    os.remove(missing)
    png = bytearray(cv2.imencode(".png", np.zeros((40, 40, 3), np.uint8))[1].tobytes())
    png[len(png) // 2:] = bytes(len(png) - len(png) // 2)
    with open(corrupt, "wb") as stream:
        stream.write(bytes(png))
    output = str(tmp_path / "run")
    code, line = _run_in_process(TEST, _args(data_copy, output, *FREQUENCY_BASELINE), capsys)
    assert code == 2 and line == f"error: image cannot be decoded: {corrupt}"
    with open(corrupt, "wb") as stream:
        stream.write(cv2.imencode(".jpg", np.zeros((40, 40, 3), np.uint8))[1].tobytes())
    code, line = _run_in_process(TEST, _args(data_copy, output, *FREQUENCY_BASELINE), capsys)
    assert code == 2 and line == f"error: image listed in image_data.json is missing: {missing}"


def test_an_empty_test_split_is_one_line_naming_the_file(data_copy, tmp_path, capsys):
    import h5py

    annotations = os.path.join(data_copy, "vg", "VG-SGG-with-attri.h5")
    with h5py.File(annotations, "r+") as stream:
        split = stream["split"][:]
        split[split == 2] = 0
        stream["split"][:] = split
    code, line = _run_in_process(TEST, _args(data_copy, str(tmp_path / "run"), *FREQUENCY_BASELINE), capsys)
    assert code == 2
    assert line.startswith(f"error: building the test split: {annotations}: the 'test' split is empty")


class _DiskFillsUp(io.FileIO):
    """A file whose writes fail as on a full disk."""

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.slow
def test_a_full_disk_while_saving_is_exit_code_1_and_keeps_the_previous_checkpoint(tiny_synthvg, tmp_path, capsys,
                                                                                  monkeypatch):
    """The final save meets ENOSPC (simulated in the writer: the temporary file's writes fail)."""
    opened = os.fdopen

    def fdopen(handle, mode="r", *args, **kwargs):
        if ".model_final.pth." in os.readlink(f"/proc/self/fd/{handle}"):
            return _DiskFillsUp(handle, "wb")
        return opened(handle, mode, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "fdopen", fdopen)
    output = tmp_path / "run"
    code, line = _run_in_process(TRAIN, _args(tiny_synthvg, str(output), "--skip-test"), capsys)
    assert code == 1
    assert line == f"error: no space left on device while writing {output / 'model_final.pth'}"
    assert (output / LAST_CHECKPOINT_FILE).read_text() == "model_0000004.pth"
    assert torch.load(output / "model_0000004.pth", weights_only=True)["iteration"] == 4
    assert sorted(name for name in os.listdir(output) if name.startswith(".")) == []


def _can_mount_a_small_tmpfs() -> bool:
    unshare = shutil.which("unshare")
    return bool(unshare) and subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_a_small_tmpfs(), reason="needs `unshare -rm` to mount a small tmpfs (a real "
                    "full disk) without root")
def test_a_really_full_disk_while_saving(tiny_synthvg, tmp_path):
    """A 120 MB tmpfs holds the two periodic checkpoints of the tiny model (47 MB each) but not the final one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    output = disk / "run"
    errors = tmp_path / "stderr.txt"
    command = " ".join([f"mount -t tmpfs -o size=120m tmpfs {disk} && cd {ROOT} &&", PYTHON,
                        "tools/relation_train_net.py", *_args(tiny_synthvg, str(output), "--skip-test"),
                        f"2> {errors}; echo exit=$?;",
                        f"cat {output}/{LAST_CHECKPOINT_FILE}; echo; ls -a {output};", PYTHON, "-c",
                        f"'import torch; print(\"iteration\", torch.load(\"{output}/model_0000004.pth\")[\"iteration\"])'"])
    result = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT})
    stdout = result.stdout.splitlines()
    assert "exit=1" in stdout, result.stdout
    assert _error_lines(errors.read_text()) == [
        f"error: no space left on device while writing {output / 'model_final.pth'}"]
    assert "model_0000004.pth" in stdout and "model_final.pth" not in stdout and "iteration 4" in stdout
    assert not any(name.endswith(".tmp") for name in stdout)

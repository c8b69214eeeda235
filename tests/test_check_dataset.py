"""tools/check_dataset.py on a 40-image SynthVG: a clean dataset passes; corrupt or missing images, a wrong
decoded size, a missing GloVe file and a bad config are reported as the tool documents."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tool_loading import load_tool
from rebalance_hca.config import load_config
from rebalance_hca.data import build_dataset
from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg
from rebalance_hca.utils.cli import UserInputError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = str(ROOT / "configs" / "synthetic" / "relation_HCA_R18_FPN.yaml")


check_dataset = load_tool("check_dataset")


@pytest.fixture(scope="module")
def pristine_synthvg(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthvg")
    write_synthvg(str(root), SynthVGOptions(num_images=40, seed=0))
    return root


@pytest.fixture
def data_root(pristine_synthvg, tmp_path) -> Path:
    """A copy of the SynthVG that a test may damage."""
    root = tmp_path / "data"
    shutil.copytree(pristine_synthvg, root)
    return root


def overrides(data_root: Path) -> list[str]:
    return ["DATASETS.DATA_DIR", str(data_root), "GLOVE_DIR", str(data_root / "vg"),
            "OUTPUT_DIR", str(data_root.parent / "output"), "DATASETS.NUM_VAL_IM", "5"]


def image_path(data_root: Path, mode: str, index: int) -> Path:
    dataset = build_dataset(load_config(CONFIG_FILE, overrides(data_root)), mode, with_transforms=False)
    return Path(dataset.image_path(index))


def run_check(data_root: Path, capsys, *flags: str) -> tuple[int, list[str]]:
    """(exit code, stdout lines) of the tool run in-process."""
    code = check_dataset.main(["--config-file", CONFIG_FILE, *flags, *overrides(data_root)])
    return code, capsys.readouterr().out.splitlines()


def problem_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("problem: ")]


def test_clean_dataset_passes(data_root, capsys):
    code, lines = run_check(data_root, capsys, "--full")
    assert code == 0
    assert re.fullmatch(r"dataset check: OK \(\d+ images in 3 splits, every image decoded\)", lines[-1])
    assert problem_lines(lines) == []
    assert any(line.startswith("GloVe vectors (200-d") for line in lines)
    assert any(line.startswith("frequency statistics") for line in lines)
    assert any(line.startswith("stage-2 train split (top 6 predicates capped at 400") for line in lines)
    assert any(line.startswith("train:") for line in lines)


def test_full_lists_corrupt_and_missing_images_by_name(data_root, capsys):
    corrupt, missing = image_path(data_root, "test", -1), image_path(data_root, "val", -1)
    corrupt.write_bytes(b"not a jpeg at all")
    missing.unlink()

    code, lines = run_check(data_root, capsys, "--num-samples", "1")
    assert code == 0 and lines[-1].startswith("dataset check: OK")  # without --full, only samples are loaded

    code, lines = run_check(data_root, capsys, "--full")
    assert code == 1
    problems = problem_lines(lines)
    assert len(problems) == 2
    assert any(str(corrupt) in line and "cannot be decoded" in line for line in problems)
    assert any(str(missing) in line and "missing" in line for line in problems)
    assert lines[-1] == "dataset check: 2 problem(s)"


def test_a_bad_sample_fails_the_quick_check_and_is_listed_once(data_root, capsys):
    corrupt = image_path(data_root, "train", 0)
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    for flags in ((), ("--full",)):
        code, lines = run_check(data_root, capsys, *flags)
        assert code == 1
        assert problem_lines(lines) == [f"problem: image cannot be decoded: {corrupt}"]
        assert lines[-1] == "dataset check: 1 problem(s)"


def test_decoded_size_other_than_listed_is_a_warning(data_root, capsys):
    resized = image_path(data_root, "test", -1)
    cv2.imwrite(str(resized), np.zeros((30, 40, 3), dtype=np.uint8))
    code, lines = run_check(data_root, capsys, "--full")
    assert code == 0
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 1 and str(resized) in warnings[0] and "decodes to 40x30" in warnings[0]
    assert lines[-1].startswith("dataset check: OK") and lines[-1].endswith(", 1 warning(s))")


def test_missing_glove_file_is_a_problem(data_root, capsys):
    for glove_file in (data_root / "vg").glob("glove.6B.200d.*"):
        glove_file.unlink()
    code, lines = run_check(data_root, capsys)
    assert code == 1
    problems = problem_lines(lines)
    assert len(problems) == 1 and "glove.6B.200d.txt" in problems[0] and "not found" in problems[0]
    assert lines[-1] == "dataset check: 1 problem(s)"
    assert not any("OK" in line for line in lines)


def test_unreadable_annotations_stop_the_check(data_root):
    (data_root / "vg" / "VG-SGG-with-attri.h5").unlink()
    with pytest.raises(UserInputError, match="building the splits: .*VG-SGG-with-attri.h5"):
        check_dataset.main(["--config-file", CONFIG_FILE, *overrides(data_root)])


def test_no_decoding_thread_is_refused(data_root):
    with pytest.raises(UserInputError, match="--workers must be at least 1, got 0"):
        check_dataset.main(["--config-file", CONFIG_FILE, "--workers", "0", *overrides(data_root)])


def test_unknown_config_key_is_one_line_and_exit_code_2(data_root):
    command = [sys.executable, "tools/check_dataset.py", "--config-file", CONFIG_FILE,
               *overrides(data_root), "MODEL.NO_SUCH_KEY", "1"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: reading the config: command line: unknown config key MODEL.NO_SUCH_KEY"]
    assert "Traceback" not in result.stdout + result.stderr


def test_full_lists_a_truncated_jpeg_and_a_corrupt_png_by_name(data_root, capsys):
    truncated, corrupt_png = image_path(data_root, "train", 1), image_path(data_root, "test", 0)
    data = truncated.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    ok, png = cv2.imencode(".png", cv2.imread(str(corrupt_png)))
    damaged = bytearray(png.tobytes())
    damaged[len(damaged) // 2:len(damaged) // 2 + 16] = bytes(16)
    corrupt_png.write_bytes(bytes(damaged))

    code, lines = run_check(data_root, capsys, "--full", "--num-samples", "0")
    assert code == 1
    assert sorted(problem_lines(lines)) == sorted([
        f"problem: image is truncated (its JPEG data ends before the end-of-image marker): {truncated}",
        f"problem: image cannot be decoded: {corrupt_png}"])

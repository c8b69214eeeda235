"""scripts/benchmark_table.sh and scripts/faithful_recipe.sh (the comparison table and ReBalance-HCA's own
three-run recipe on SynthVG), and the faithful recipe's stage 1 using the confusion matrix.

The scripts' full runs take most of an hour, so their tests run them through a stand-in interpreter
(tests/script_shim.py): every tool call is recorded, and only the runs a test names really train (tiny models,
4 iterations); the others write the files the scripts read. That checks each script's whole step list, its
reuse of existing outputs and its final table in seconds, and the real rows check that the steps work."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from relation_testing import ROOT, SYNTHETIC_HCA_CONFIG, TINY_MODEL_OPTS, tiny_relation_config
from script_shim import option
from rebalance_hca.config import load_config
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.detector import build_detector
from rebalance_hca.modeling.relation_head.confusion import predicate_correlation

SHIM = os.path.join(ROOT, "tests", "script_shim.py")
TINY_RUN_OPTS = [*TINY_MODEL_OPTS, "SOLVER.MAX_ITER", "4", "SOLVER.WARMUP_ITERS", "2", "SOLVER.TO_VAL", "False"]
TABLE_ROWS = ["frequency baseline", "IMP", "Motifs", "VCTree", "Transformer", "HCA", "Motifs (causal, no TDE)",
              "Motifs + TDE", "Motifs + ReBalance", "Transformer + ReBalance", "HCA + ReBalance",
              "HCA + ReBalance, RB's 3 runs"]
TABLE_COLUMNS = ["R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100", "F@50", "mR_head@50", "mR_body@50",
                 "mR_tail@50", "train s"]


def shim_venv(folder) -> str:
    """A virtualenv for scripts/_venv.sh whose python is tests/script_shim.py, marked as installed."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" "{SHIM}" "$@"\n')
    python.chmod(0o755)
    digest = hashlib.sha256(b"".join(open(os.path.join(ROOT, name), "rb").read()
                                     for name in ("setup.py", "requirements.txt", "requirements-test.txt")))
    (folder / ".rebalance_hca_installed").write_text(digest.hexdigest() + "\n")
    return str(folder)


def run_script(script: str, tmp_path, data_dir: str, output_root: str, *overrides: str, real_runs: str = "",
               dataset: str = "vg150") -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run scripts/``script`` through the shim; returns the process and the tool calls it made."""
    log = tmp_path / f"calls_{len(list(tmp_path.glob('calls_*')))}.jsonl"
    venv = tmp_path / "venv"
    env = {**os.environ, "REBALANCE_HCA_VENV": shim_venv(venv) if not venv.exists() else str(venv),
           "SHIM_LOG": str(log), "SHIM_REAL_RUNS": real_runs, "SYNTHVG_DIR": data_dir, "OUTPUT_ROOT": output_root,
           "DATASET": dataset, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    env.pop("MARKDOWN", None)   # the plain table, which parse_table reads
    process = subprocess.run(["bash", os.path.join(ROOT, "scripts", script), *overrides], env=env, cwd=ROOT,
                             capture_output=True, text=True)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return process, calls


def parse_table(stdout: str) -> tuple[list[str], dict[str, list[str]]]:
    """(columns, {run name: cells}) of the last table a script printed (compare_runs' plain layout: cells
    apart by two spaces or more)."""
    lines = stdout.splitlines()
    start = max(index for index, line in enumerate(lines) if line.startswith("run "))
    columns = re.split(r"\s{2,}", lines[start].strip())[1:]
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        name, *cells = re.split(r"\s{2,}", line.strip())
        rows[name] = cells
    return columns, rows


def runs_of(calls: list[dict]) -> list[tuple[str, str]]:
    """(tool, OUTPUT_DIR folder name) of every call that names an OUTPUT_DIR, in order."""
    return [(call["tool"], os.path.basename(option(call["arguments"], "OUTPUT_DIR"))) for call in calls
            if option(call["arguments"], "OUTPUT_DIR")]


def call_of(calls: list[dict], tool: str, run: str) -> list[str]:
    """The arguments of the one call of ``tool`` with OUTPUT_DIR .../``run``."""
    matches = [call["arguments"] for call in calls if call["tool"] == tool
               and os.path.basename(option(call["arguments"], "OUTPUT_DIR") or "") == run]
    assert len(matches) == 1, (tool, run, matches)
    return matches[0]


EXPECTED_RUNS = [
    ("check_dataset.py", "check"), ("detector_pretrain_net.py", "detector"),
    ("relation_train_net.py", "hca_stage1"), ("compute_confusion_matrix.py", "hca_stage1"),
    ("relation_train_net.py", "hca_stage2"), ("relation_train_net.py", "transformer_stage1"),
    ("relation_test_net.py", "frequency"),
    ("relation_train_net.py", "hca_rb_stage1"), ("relation_train_net.py", "hca_rb_stage2"),
    ("relation_train_net.py", "imp_stage1"), ("relation_train_net.py", "motifs_stage1"),
    ("relation_train_net.py", "vctree_stage1"), ("relation_train_net.py", "causal_motifs"),
    ("relation_test_net.py", "motifs_tde"), ("compute_confusion_matrix.py", "motifs_stage1"),
    ("compute_confusion_matrix.py", "transformer_stage1"), ("relation_train_net.py", "motifs_stage2"),
    ("relation_train_net.py", "transformer_stage2")]


@pytest.mark.slow
def test_benchmark_table_step_list_reuse_and_table(tiny_synthvg, tmp_path):
    """Every run of the table in order, with its config and recipe options and the user's overrides last; a rerun
    recomputes nothing that exists (detector, confusion matrices); the table has every row and column."""
    output_root = str(tmp_path / "out")
    overrides = ["SOLVER.MAX_ITER", "4"]
    process, calls = run_script("benchmark_table.sh", tmp_path, tiny_synthvg, output_root, *overrides)
    assert process.returncode == 0, process.stderr
    assert runs_of(calls) == EXPECTED_RUNS
    relation_calls = [call["arguments"] for call in calls if call["tool"].startswith(("relation_", "compute_"))]
    assert all(arguments[-2:] == overrides for arguments in relation_calls)
    configs = {run: os.path.basename(option(call_of(calls, "relation_train_net.py", run), "--config-file"))
               for run in ("imp_stage1", "motifs_stage1", "vctree_stage1", "causal_motifs", "motifs_stage2")}
    assert configs == {"imp_stage1": "relation_IMP_R18_FPN.yaml", "motifs_stage1": "relation_Motifs_R18_FPN.yaml",
                       "vctree_stage1": "relation_VCTree_R18_FPN.yaml",
                       "causal_motifs": "relation_Causal_Motifs_R18_FPN.yaml",
                       "motifs_stage2": "relation_Motifs_R18_FPN.yaml"}
    tde = call_of(calls, "relation_test_net.py", "motifs_tde")
    assert option(tde, "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE") == "TDE"
    assert option(tde, "MODEL.WEIGHT") == f"{output_root}/causal_motifs/model_final.pth"
    ce_matrix = f"{output_root}/hca_stage1/predicate_confusion_matrix.npy"
    rb_stage1 = call_of(calls, "relation_train_net.py", "hca_rb_stage1")
    assert option(rb_stage1, "MODEL.ROI_RELATION_HEAD.LOSS.TYPE") == "PredicateReweighting"
    assert option(rb_stage1, "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX") == ce_matrix
    assert "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER" not in rb_stage1
    for run, stage1, matrix, predictor in [
            ("hca_rb_stage2", "hca_rb_stage1", ce_matrix, None),
            ("motifs_stage2", "motifs_stage1", f"{output_root}/motifs_stage1/predicate_confusion_matrix.npy", None),
            ("transformer_stage2", "transformer_stage1",
             f"{output_root}/transformer_stage1/predicate_confusion_matrix.npy", "TransformerPredictor")]:
        stage2 = call_of(calls, "relation_train_net.py", run)
        assert option(stage2, "MODEL.PRETRAINED_MODEL_CKPT") == f"{output_root}/{stage1}/model_final.pth"
        assert option(stage2, "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX") == matrix
        assert option(stage2, "MODEL.ROI_RELATION_HEAD.LOSS.TYPE") == "PredicateReweighting"
        assert option(stage2, "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER") == "True"
        assert predictor is None or option(stage2, "MODEL.ROI_RELATION_HEAD.PREDICTOR") == predictor
    columns, rows = parse_table(process.stdout)
    assert columns == TABLE_COLUMNS and list(rows) == TABLE_ROWS
    # the fake runs each took 1 s: a ReBalance row adds up every run its model needed
    assert {name: cells[-1] for name, cells in rows.items()} == {
        **{name: "1" for name in TABLE_ROWS}, "frequency baseline": "-", "Motifs + ReBalance": "2",
        "Transformer + ReBalance": "2", "HCA + ReBalance": "2", "HCA + ReBalance, RB's 3 runs": "3"}

    rerun, again = run_script("benchmark_table.sh", tmp_path, tiny_synthvg, output_root, *overrides)
    assert rerun.returncode == 0, rerun.stderr
    assert [run for run in runs_of(again) if run[0] in ("compute_confusion_matrix.py", "detector_pretrain_net.py")] \
        == []
    assert parse_table(rerun.stdout) == (columns, rows)


def test_scripts_refuse_other_dataset_layouts(tiny_synthvg, tmp_path):
    for script in ("benchmark_table.sh", "faithful_recipe.sh"):
        process, calls = run_script(script, tmp_path, tiny_synthvg, str(tmp_path / "out"), dataset="oiv6")
        assert process.returncode == 2 and calls == []
        assert "SynthVG's VG150 layout only" in process.stderr and "oiv6" in process.stderr


def tiny_detector(output_root: str) -> None:
    """A detector checkpoint of TINY_MODEL_OPTS' dimensions where the quickstart keeps its detector."""
    folder = os.path.join(output_root, "detector")
    os.makedirs(folder)
    torch.manual_seed(0)
    detector = build_detector(load_config(SYNTHETIC_HCA_CONFIG, TINY_MODEL_OPTS))
    torch.save({"model": detector.state_dict()}, os.path.join(folder, "model_final.pth"))


FAITHFUL_ROWS = ["HCA stage 1, plain CE", "default recipe, stage 2", "RB's recipe, stage 1", "RB's recipe, stage 2"]


@pytest.mark.slow
def test_faithful_recipe_trains_its_three_runs(tiny_synthvg, tmp_path):
    """RB's three runs really trained and tested by scripts/faithful_recipe.sh (tiny models, 4 iterations): the
    plain-CE model (the quickstart's hca_stage1) and its confusion matrix, stage 1 with the reweighting loss and
    that matrix, stage 2 from it. Their rows get measured metrics and training times that add up the runs; the
    quickstart's other runs are the stand-in's (tests/script_shim.py)."""
    output_root = str(tmp_path / "out")
    tiny_detector(output_root)
    process, calls = run_script("faithful_recipe.sh", tmp_path, tiny_synthvg, output_root, *TINY_RUN_OPTS,
                                real_runs="hca_stage1 hca_rb_stage1 hca_rb_stage2")
    assert process.returncode == 0, process.stderr
    assert runs_of(calls) == [run for run in EXPECTED_RUNS[:9] if run[1] != "detector"]   # the test's detector
    confusion = np.load(os.path.join(output_root, "hca_stage1", "predicate_confusion_matrix.npy"))
    assert confusion.shape == (22, 22) and confusion.sum() > 0
    assert "# relation loss (MODEL.ROI_RELATION_HEAD.LOSS.TYPE 'PredicateReweighting'): PredicateReweighting" in \
        open(os.path.join(output_root, "hca_rb_stage1", "config.yml"), encoding="utf-8").read()
    columns, rows = parse_table(process.stdout)
    assert columns == TABLE_COLUMNS and list(rows) == FAITHFUL_ROWS
    times = {}
    for run in ("hca_stage1", "hca_rb_stage1", "hca_rb_stage2"):
        with open(os.path.join(output_root, run, "training_time.json"), encoding="utf-8") as stream:
            record = json.load(stream)
        assert (record["first_iteration"], record["last_iteration"]) == (1, 4) and record["seconds"] > 0
        times[run] = record["seconds"]
    assert abs(float(rows["RB's recipe, stage 2"][-1]) - sum(times.values())) <= 1
    for name in ("HCA stage 1, plain CE", "RB's recipe, stage 1", "RB's recipe, stage 2"):
        assert all(0.0 <= float(cell) <= 100.0 for cell in rows[name][:-1] if cell != "-"), rows[name]
        assert rows[name][:-1] != rows["default recipe, stage 2"][:-1]   # measured, not the stand-in's values


@pytest.mark.parametrize("loss_type, expects_correlation", [("PredicateReweighting", True), ("", False)])
def test_stage1_reweighting_uses_the_confusion_matrix(tiny_synthvg, tmp_path, loss_type, expects_correlation):
    """RB's stage 1 (LOSS.TYPE PredicateReweighting, CONFUSION_MATRIX from a plain-CE model) builds its loss with
    that matrix's predicate correlation; the default stage 1 (LOSS.TYPE "") stays plain cross-entropy."""
    counts = np.random.default_rng(0).integers(0, 50, (22, 22)).astype(np.float32)
    counts[0], counts[:, 0] = 0, 0
    counts[3, 5] = 10_000    # predicate 3 is mostly taken for 5: correlated above the threshold
    matrix = tmp_path / "confusion.npy"
    np.save(matrix, counts)
    model = build_model(tiny_relation_config(tiny_synthvg, str(tmp_path / "run"), "predcls",
                                             "MODEL.ROI_RELATION_HEAD.LOSS.TYPE", loss_type,
                                             "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX", str(matrix)))
    loss = model.relation_head.relation_loss
    if not expects_correlation:
        assert isinstance(loss, torch.nn.CrossEntropyLoss)
        return
    expected = torch.as_tensor(predicate_correlation(counts), dtype=torch.float32)
    assert torch.equal(loss.correlation, expected) and bool((loss.correlation > 0.9).any())

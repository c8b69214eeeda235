"""tools/evaluate_predictions.py and tools/compute_zeroshot_triplets.py on a small SynthVG."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tool_loading import load_tool
from rebalance_hca.config import load_config
from rebalance_hca.data import build_dataset
from rebalance_hca.evaluation import SGGEvaluator, save_predictions
from rebalance_hca.utils.cli import EXIT_USER_ERROR, UserInputError

ROOT = Path(__file__).resolve().parents[1]
PREDCLS = ["MODEL.RELATION_ON", "True", "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "True",
           "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "True", "DATASETS.NUM_VAL_IM", "10"]


@pytest.fixture(scope="module")
def synthvg(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthvg")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_synthetic_vg.py"), "--output-dir", str(folder),
                    "--num-images", "80", "--annotations-only"], check=True, capture_output=True)
    return folder


def predcls_predictions(dataset) -> tuple[list[dict], list[dict]]:
    """Every ordered GT pair; the GT predicate of a GT pair gets a random boost, so recall is partial."""
    rng = np.random.default_rng(0)
    groundtruths, predictions = [], []
    for index in range(len(dataset)):
        target = dataset.get_groundtruth(index, evaluation=True)
        count = len(target["labels"])
        pairs = np.argwhere(~np.eye(count, dtype=bool))
        rel_scores = rng.random((len(pairs), len(dataset.ind_to_predicates))).astype(np.float32)
        for subject, obj, predicate in target["relation_tuple"].tolist():
            rel_scores[(pairs[:, 0] == subject) & (pairs[:, 1] == obj), predicate] += rng.random()
        order = np.argsort(-rel_scores[:, 1:].max(1), kind="stable")
        groundtruths.append({"boxes": target["boxes"], "labels": target["labels"],
                             "relations": target["relation_tuple"]})
        predictions.append({"boxes": target["boxes"], "labels": target["labels"], "scores": torch.ones(count),
                            "rel_pair_idxs": pairs[order], "rel_scores": rel_scores[order]})
    return groundtruths, predictions


def test_evaluate_predictions_prints_the_report_and_writes_files(synthvg, tmp_path, capsys):
    opts = ["DATASETS.DATA_DIR", str(synthvg), *PREDCLS]
    dataset = build_dataset(load_config(None, opts), "test", with_transforms=False)
    groundtruths, predictions = predcls_predictions(dataset)
    path = tmp_path / "predictions_test.npz"
    save_predictions(path, predictions, "predcls", len(dataset.ind_to_predicates), groundtruths,
                     metadata={"dataset_size": len(dataset)})

    zeroshot_path = tmp_path / "zeroshot.pytorch"
    load_tool("compute_zeroshot_triplets").main(["--output", str(zeroshot_path), *opts])
    evaluation = load_tool("evaluate_predictions").main(
        ["--predictions", str(path), "--split", "test", "--zeroshot-triplets", str(zeroshot_path), *opts])
    printed = capsys.readouterr().out
    assert "Detection evaluation mAp=" in printed and "type=TopK Accuracy." in printed

    expected = SGGEvaluator("predcls", num_predicates=len(dataset.ind_to_predicates),
                            zeroshot_triplets=torch.load(zeroshot_path))
    for groundtruth, prediction in zip(groundtruths, predictions):
        expected.add(groundtruth, prediction)
    expected = expected.summarize()
    for key in ("R@20", "R@100", "ng-R@50", "mR@100", "zR@100", "A@50"):
        assert evaluation["sgg"][key] == expected[key], key
    assert 0 < expected["R@20"] < 1
    results = json.loads((tmp_path / "test_results.json").read_text())
    assert results["R@100"] == expected["R@100"] and results["split"] == "test"
    assert (tmp_path / "test_report.txt").read_text() == evaluation["report"]
    assert (tmp_path / "test_per_predicate_recall.png").stat().st_size > 0


def test_evaluate_predictions_refuses_a_file_of_another_mode(synthvg, tmp_path):
    opts = ["DATASETS.DATA_DIR", str(synthvg), *PREDCLS]
    path = tmp_path / "sgdet.npz"
    save_predictions(path, [], "sgdet", 51)
    with pytest.raises(UserInputError, match="predictions are for sgdet, the config describes predcls"):
        load_tool("evaluate_predictions").main(["--predictions", str(path), *opts])


@pytest.mark.parametrize("tool, arguments, message", [
    ("evaluate_predictions", ["--predictions", "{tmp}/missing.npz"], "error: reading the predictions: .*missing.npz"),
    ("compute_zeroshot_triplets", ["--output", "{tmp}/zeroshot.pytorch", "DATASETS.DATA_DIR", "{tmp}/no_data"],
     "error: building the train and the evaluated split: .*no_data"),
])
def test_bad_input_is_one_error_line_and_exit_code_2(tool, arguments, message, tmp_path):
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]
    result = subprocess.run([sys.executable, f"tools/{tool}.py", *arguments, *PREDCLS], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_USER_ERROR, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(message, lines[0]), result.stderr

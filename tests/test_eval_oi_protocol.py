"""The Open Images protocol around OIEvaluator: the choice by the dataset name's family, evaluate_split, PySGG's report
text, the report files, and the entry points (relation_test_net.py, evaluate_predictions.py).

No OI data is needed: the entry-point tests run on the tiny SynthVG and only rename the test dataset
(``dataset_name`` as the engine and the tool see it) to an Open Images catalog name, whose family is all
the protocol choice reads.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from eval_random_inputs import numpy_image
from relation_testing import SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, mode_opts, tiny_relation_config
from tool_loading import load_tool
from rebalance_hca.engine import relation_runs
from rebalance_hca.engine.relation_inference import evaluate_split
from rebalance_hca.data import UnknownDatasetError, family_of
from rebalance_hca.evaluation import (OPEN_IMAGES_PROTOCOL, SGB_PROTOCOL, OIEvaluator, compact_prediction,
                                      format_oi_report, save_predictions, write_oi_report_files)
from rebalance_hca.modeling import build_model
from rebalance_hca.utils.cli import UserInputError

OI_TEST = "openimage_v6_test"


def test_protocol_is_chosen_by_the_dataset_names_family():
    assert [family_of(name).protocol for name in ("openimage_v6_test", "openimage_v6_val", "openimage_v6_train")] \
        == [OPEN_IMAGES_PROTOCOL] * 3
    assert family_of("VG_stanford_filtered_with_attribute_test").protocol is SGB_PROTOCOL
    assert (OPEN_IMAGES_PROTOCOL.name, SGB_PROTOCOL.name) == ("oi", "vg")
    with pytest.raises(UnknownDatasetError, match="known names: VG150: VG_stanford_filtered_with_attribute_train"):
        family_of("openimage_v4_train")


class FakeDataset:
    """The dataset contract evaluate_split reads, on random images."""

    def __init__(self, images, num_predicates):
        self.images = images
        self.ind_to_predicates = ["__background__"] + [f"p{i}" for i in range(1, num_predicates)]
        self.ind_to_classes = ["__background__", "a", "b", "c"]

    def __len__(self):
        return len(self.images)

    def get_groundtruth(self, index, evaluation=False):
        groundtruth = self.images[index][0]
        return {"boxes": groundtruth["boxes"], "labels": groundtruth["labels"],
                "relation_tuple": groundtruth["relations"]}


def test_evaluate_split_uses_the_protocol_it_is_given():
    rng = np.random.default_rng(0)
    images = [numpy_image(rng, "sgdet", 6, num_detections=8, tie_scores=False) for _ in range(6)]
    dataset = FakeDataset(images, 6)
    predictions = dict(enumerate(prediction for _, prediction in images))
    oi = evaluate_split(dataset, predictions, "sgdet", None, None, protocol=OPEN_IMAGES_PROTOCOL)
    expected = OIEvaluator(num_predicates=6)
    for groundtruth, prediction in images:
        expected.add(groundtruth, prediction)
    assert oi["protocol"] == "oi" and oi["oi"] == expected.summarize()
    assert "weighted final_score:" in oi["report"] and oi["detection"]["mAP"] >= 0
    vg = evaluate_split(dataset, predictions, "sgdet", None, None, with_detection=False)
    assert "sgg" in vg and "oi" not in vg and "weighted final_score" not in vg["report"]


def hand_results() -> dict:
    """OIEvaluator-shaped results with round numbers (3 predicates, npos 3 / 1 / 0)."""
    classic = {"mode": "sgdet"}
    for k, (r, ng, mr) in zip((20, 50, 100), ((.1, .2, .3), (.4, .5, .6), (.7, .8, .9))):
        classic.update({f"R@{k}": r, f"ng-R@{k}": ng, f"mR@{k}": mr})
    return {"mode": "sgdet", "classic": classic, "mR@50": 0.6, "mR_per_predicate@50": [0.5, 0.25, 0.0],
            "mR_per_predicate@100": [1.0, 0.5, 0.0], "npos_per_predicate": [3, 1, 0],
            "AP_rel_per_predicate": [0.5, 1.0, 0.0], "AP_phr_per_predicate": [0.25, 0.0, 0.0],
            "mAP_rel": 0.5, "wmAP_rel": 0.625, "mAP_phr": 0.25 / 3, "wmAP_phr": 0.1875,
            "R@50": 0.75, "R@100": 1.0, "R@50_per_image": 0.5, "R@100_per_image": 0.625,
            "final_score": 0.2 * 0.75 + 0.4 * 0.5 + 0.4 * 0.25 / 3,
            "score_wtd": 0.2 * 0.75 + 0.4 * 0.625 + 0.4 * 0.1875}


def test_report_lines_are_pysggs():
    text = format_oi_report(hand_results(), ["__background__", "on", "holds", "kiss"], detection_map=0.25)
    rule100, rule80 = "=" * 100, "=" * 80
    assert text == (
        f"\n{rule100}\nDetection evaluation mAp=0.2500\n{rule100}\n"
        "classic recall evaluations:\n"
        "SGG eval:   R @ 20: 0.1000;   R @ 50: 0.4000;   R @ 100: 0.7000;  for mode=sgdet, type=Recall(Main).\n"
        "SGG eval: ngR @ 20: 0.2000; ngR @ 50: 0.5000; ngR @ 100: 0.8000;  for mode=sgdet, "
        "type=No Graph Constraint Recall(Main).\n"
        "SGG eval:  mR @ 20: 0.3000;  mR @ 50: 0.6000;  mR @ 100: 0.9000;  for mode=sgdet, type=Mean Recall.\n"
        "Per-class recall@50: \n(on:0.5000) (holds:0.2500) (kiss:0.0000) \n"
        "Per-class recall@100: \n(on:1.0000) (holds:0.5000) (kiss:0.0000) \n\n"
        f"\n{rule80}\n"
        "\nrel mAP: 50.00, weighted rel mAP: 62.50\n"
        "rel AP perclass: AP/ weighted-AP (recall)\n"
        "on: 50.000 / 37.500 (0.750000), holds: 100.000 / 25.000 (0.250000), kiss: 0.000 / 0.000 (0.000000), \n\n"
        "\nphr mAP: 8.33, weighted phr mAP: 18.75\n"
        "phr AP perclass: AP/ weighted-AP (recall)\n"
        "on: 25.000 / 18.750 (0.750000), holds: 0.000 / 0.000 (0.250000), kiss: 0.000 / 0.000 (0.000000), \n\n"
        "recall@50: 75.00, recall@100: 100.00\n"
        "recall@50: 50.00, recall@100: 62.50 (per images)\n\n"
        "weighted_res: 0.4 * w_rel_mAP + 0.2 * recall@50 + 0.4 * w_phr_mAP \n"
        "final_score:38.33  weighted final_score: 47.50\n"
        f"{rule80}\n\n"
        "OI summary (percent): R@50 75.00; wmAP_rel 62.50; wmAP_phr 18.75; score_wtd 47.50; mR@50 60.00; "
        "for mode=sgdet\n")


def test_report_files(tmp_path):
    results = hand_results()
    evaluation = {"oi": results, "detection": None, "report": "text"}
    paths = write_oi_report_files(tmp_path, "test", evaluation, ["__background__", "on", "holds", "kiss"],
                                  extra={"split": "test"})
    saved = json.loads(open(paths["results"]).read())
    assert saved["score_wtd"] == results["score_wtd"] and saved["protocol"] == "oi" and saved["split"] == "test"
    assert open(paths["report"]).read() == "text"
    assert open(paths["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def _args(data_dir, output_dir, *extra):
    return ["--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS, *mode_opts("predcls"),
            "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir,
            "TEST.IMS_PER_BATCH", "2", "MODEL.ROI_RELATION_HEAD.PREDICTOR", "FrequencyBaselinePredictor", *extra]


def _renamed(real_name):
    """dataset_name with the test split renamed to an Open Images name."""
    def dataset_name(cfg, mode):
        return OI_TEST if mode == "test" else real_name(cfg, mode)
    return dataset_name


@pytest.mark.slow
def test_an_openimage_test_set_is_evaluated_with_the_oi_protocol_through_the_entry_points(
        tiny_synthvg, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(relation_runs, "dataset_name", _renamed(relation_runs.dataset_name))
    output = str(tmp_path / "run")
    evaluation = load_tool("relation_test_net").main(_args(tiny_synthvg, output))
    assert evaluation["protocol"] == "oi"
    results = evaluation["oi"]
    assert 0 < results["R@50"] < 1 and 0 < results["score_wtd"] < 1 and not math.isnan(results["mR@50"])
    folder = os.path.join(output, "inference", OI_TEST)
    assert sorted(os.listdir(folder)) == ["predictions.npz", "test_per_predicate_ap.png", "test_report.txt",
                                          "test_results.json"]
    assert "weighted final_score:" in open(os.path.join(folder, "test_report.txt")).read()

    # the saved predictions re-evaluate to the same numbers with evaluate_predictions.py
    tool = load_tool("evaluate_predictions")
    monkeypatch.setattr(tool, "dataset_name", _renamed(tool.dataset_name))
    capsys.readouterr()
    again = tool.main(["--predictions", os.path.join(folder, "predictions.npz"), "--output-dir",
                       str(tmp_path / "again"), *_args(tiny_synthvg, output)])
    assert again["oi"] == results
    assert "recall@50: " in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "again" / "test_per_predicate_ap.png")


def test_evaluate_predictions_refuses_a_file_without_oi_candidates(tiny_synthvg, tmp_path, monkeypatch):
    tool = load_tool("evaluate_predictions")
    monkeypatch.setattr(tool, "dataset_name", _renamed(tool.dataset_name))
    path = tmp_path / "vg_only.npz"
    empty = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, dtype=np.int64), "relations": np.zeros((0, 3))}
    prediction = {"rel_pair_idxs": np.zeros((0, 2), dtype=np.int64), "rel_scores": np.zeros((0, 22))}
    save_predictions(path, [compact_prediction(prediction, empty, "predcls", 22)], "predcls", 22)
    with pytest.raises(UserInputError, match="no Open Images candidates"):
        tool.main(["--predictions", str(path), *_args(tiny_synthvg, str(tmp_path))])


def test_validation_on_an_openimage_split_returns_score_wtd(tiny_synthvg, tmp_path, monkeypatch, caplog):
    real_name = relation_runs.dataset_name
    monkeypatch.setattr(relation_runs, "dataset_name",
                        lambda cfg, mode: "openimage_v6_val" if mode == "val" else real_name(cfg, mode))
    cfg = tiny_relation_config(tiny_synthvg, str(tmp_path), "predcls", "MODEL.ROI_RELATION_HEAD.PREDICTOR",
                               "FrequencyBaselinePredictor")
    validate = relation_runs.relation_validator(cfg, distributed=False, device=torch.device("cpu"))
    caplog.set_level("INFO")
    metric = validate(build_model(cfg))
    assert 0 < metric < 1
    assert f"Validation score_wtd {metric:.4f}  R@50 " in caplog.text

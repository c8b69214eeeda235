"""SGB-format text report, results JSON and the per-predicate recall chart."""
from __future__ import annotations

import json
import math

import numpy as np

from rebalance_hca.evaluation import format_sgb_report, plot_per_predicate_recall, save_results_json

NAMES = ["__background__", "above", "in front of", "on"]


def results(mode: str) -> dict:
    values = {"mode": mode}
    for k, base in ((20, 0.1), (50, 0.2), (100, 0.3)):
        for offset, name in enumerate(("R", "ng-R", "zR", "ng-zR", "mR", "ng-mR", "A", "F", "mR_head", "mR_body",
                                       "mR_tail")):
            values[f"{name}@{k}"] = base + offset / 100
        values[f"mR_per_predicate@{k}"] = [0.5, 0.25, 0.125]
        values[f"ng-mR_per_predicate@{k}"] = [1.0, 0.0, 0.75]
    values["zR@20"] = math.nan
    return values


def test_report_lines_match_sgb_formats():
    lines = format_sgb_report(results("predcls"), "predcls", NAMES, detection_map=0.123456).split("\n")
    rule = "=" * 100
    assert lines[:5] == ["", rule, "Detection evaluation mAp=0.1235", rule,
                         "SGG eval:     R @ 20: 0.1000;     R @ 50: 0.2000;     R @ 100: 0.3000;  "
                         "for mode=predcls, type=Recall(Main)."]
    assert lines[5] == ("SGG eval:  ng-R @ 20: 0.1100;  ng-R @ 50: 0.2100;  ng-R @ 100: 0.3100;  "
                        "for mode=predcls, type=No Graph Constraint Recall(Main).")
    assert lines[6] == ("SGG eval:    zR @ 20: nan;    zR @ 50: 0.2200;    zR @ 100: 0.3200;  "
                        "for mode=predcls, type=Zero Shot Recall.")
    assert lines[7] == ("SGG eval: ng-zR @ 20: 0.1300; ng-zR @ 50: 0.2300; ng-zR @ 100: 0.3300;  "
                        "for mode=predcls, type=No Graph Constraint Zero Shot Recall.")
    assert lines[8] == ("SGG eval:    mR @ 20: 0.1400;    mR @ 50: 0.2400;    mR @ 100: 0.3400;  "
                        "for mode=predcls, type=Mean Recall.")
    assert lines[9:12] == ["----------------------- Details ------------------------",
                           "(above:0.5000) (in front of:0.2500) (on:0.1250) ",
                           "--------------------------------------------------------"]
    assert lines[12].startswith("SGG eval: ng-mR @ 20: 0.1500; ng-mR @ 50: 0.2500;")
    assert lines[14] == "(above:1.0000) (in front of:0.0000) (on:0.7500) "
    assert lines[16] == ("SGG eval:     A @ 20: 0.1600;     A @ 50: 0.2600;     A @ 100: 0.3600;  "
                         "for mode=predcls, type=TopK Accuracy.")
    assert lines[17] == rule
    assert lines[18].startswith("SGG eval:     F @ 20: 0.1700;")
    assert lines[19].startswith("SGG eval:  head-mR @ 20: 0.1800;")


def test_sgdet_report_has_no_accuracy_line_and_no_detection_line_when_not_given():
    text = format_sgb_report(results("sgdet"), "sgdet", NAMES)
    assert "A @" not in text and "mAp" not in text
    assert text.startswith("\n" + "=" * 100 + "\nSGG eval:     R @ 20: 0.1000;")


def test_results_json_turns_nan_into_null(tmp_path):
    path = tmp_path / "results.json"
    save_results_json(path, results("predcls"), {"detection": {"mAP": np.float64(0.5), "coco_stats": np.ones(2)}})
    loaded = json.loads(path.read_text())
    assert loaded["zR@20"] is None and loaded["R@100"] == 0.3 and loaded["detection"]["coco_stats"] == [1.0, 1.0]


def test_chart_is_a_png_with_and_without_training_counts(tmp_path):
    for counts, name in ((np.array([0, 10, 300, 20]), "with.png"), (None, "without.png")):
        plot_per_predicate_recall(tmp_path / name, results("predcls"), NAMES, counts)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

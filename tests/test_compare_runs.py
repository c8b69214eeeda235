"""tools/compare_runs.py: one table over several runs' results JSONs, with the columns of their protocol."""
import json
import os

import pytest

from rebalance_hca.utils.cli import UserInputError
from tool_loading import load_tool


def write_results(folder, results: dict, dataset: str = "some_dataset") -> str:
    path = os.path.join(folder, "inference", dataset)
    os.makedirs(path)
    with open(os.path.join(path, "test_results.json"), "w") as stream:
        json.dump(results, stream)
    return str(folder)


VG_RESULTS = {"R@20": 0.5, "R@50": 0.625, "R@100": 0.7, "mR@20": 0.1, "mR@50": 0.2, "mR@100": 0.25, "F@50": 0.3}
OI_RESULTS = {"protocol": "oi", "R@50": 0.75, "wmAP_rel": 0.3351, "wmAP_phr": 0.3415, "score_wtd": 0.4206,
              "mR@50": 0.4045}


def test_vg_runs_give_sgb_columns(tmp_path):
    run = write_results(tmp_path / "a", VG_RESULTS)
    table = load_tool("compare_runs").main([f"first={run}", "--markdown"])
    assert table.splitlines()[0] == "| run | R@20 | R@50 | R@100 | mR@20 | mR@50 | mR@100 | F@50 |"
    assert table.splitlines()[2] == "| first | 50.00 | 62.50 | 70.00 | 10.00 | 20.00 | 25.00 | 30.00 |"


def test_oi_runs_give_pysgg_columns(tmp_path):
    run = write_results(tmp_path / "a", OI_RESULTS, "openimage_v6_test")
    table = load_tool("compare_runs").main([f"bgnn={run}", "--markdown"])
    assert table.splitlines()[0] == "| run | R@50 | wmAP_rel | wmAP_phr | score_wtd | mR@50 |"
    assert table.splitlines()[2] == "| bgnn | 75.00 | 33.51 | 34.15 | 42.06 | 40.45 |"


def test_runs_of_two_protocols_are_refused(tmp_path):
    vg, oi = write_results(tmp_path / "vg", VG_RESULTS), write_results(tmp_path / "oi", OI_RESULTS)
    with pytest.raises(UserInputError, match="different protocols"):
        load_tool("compare_runs").main([f"vg={vg}", f"oi={oi}"])


def test_a_missing_column_names_the_file(tmp_path):
    run = write_results(tmp_path / "a", {key: value for key, value in OI_RESULTS.items() if key != "wmAP_phr"})
    with pytest.raises(UserInputError, match="test_results.json: no wmAP_phr"):
        load_tool("compare_runs").main([f"a={run}"])

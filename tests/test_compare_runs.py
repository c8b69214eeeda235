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


FULL_VG_RESULTS = {**VG_RESULTS, "mR_head@50": 0.4, "mR_body@50": 0.15, "mR_tail@50": None}


def write_training_time(folder, seconds: float, first_iteration: int = 1, last_iteration: int = 300) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "training_time.json"), "w") as stream:
        json.dump({"seconds": seconds, "first_iteration": first_iteration, "last_iteration": last_iteration}, stream)
    return str(folder)


def test_full_columns_add_groups_and_training_time(tmp_path):
    trained = write_training_time(write_results(tmp_path / "trained", FULL_VG_RESULTS), 123.4)
    untrained = write_results(tmp_path / "untrained", FULL_VG_RESULTS)
    table = load_tool("compare_runs").main([f"model={trained}", f"baseline={untrained}", "--columns", "full",
                                            "--markdown"]).splitlines()
    assert table[0] == ("| run | R@20 | R@50 | R@100 | mR@20 | mR@50 | mR@100 | F@50 | mR_head@50 | mR_body@50 | "
                        "mR_tail@50 | train s |")
    assert table[2] == "| model | 50.00 | 62.50 | 70.00 | 10.00 | 20.00 | 25.00 | 30.00 | 40.00 | 15.00 | - | 123 |"
    assert table[3].endswith("| 40.00 | 15.00 | - | - |")


def test_trained_in_sums_the_stages_and_marks_an_untimed_start(tmp_path):
    stage1 = write_training_time(tmp_path / "stage1", 100.2)
    stage2 = write_training_time(write_results(tmp_path / "stage2", FULL_VG_RESULTS), 50.4, last_iteration=200)
    resumed = write_training_time(write_results(tmp_path / "resumed", FULL_VG_RESULTS), 20.0, first_iteration=101)
    table = load_tool("compare_runs").main([
        f"two stages={stage2}", f"resumed={resumed}", "--columns", "full",
        "--trained-in", f"two stages={stage1},{stage2}"]).splitlines()
    assert table[1].split()[-1] == "151" and table[2].split()[-1] == ">=20"


def test_short_columns_stay_without_time(tmp_path):
    run = write_training_time(write_results(tmp_path / "a", FULL_VG_RESULTS), 5.0)
    assert "train s" not in load_tool("compare_runs").main([f"a={run}"])


def test_oi_full_columns_add_only_the_time(tmp_path):
    run = write_training_time(write_results(tmp_path / "a", OI_RESULTS, "openimage_v6_test"), 7.0)
    table = load_tool("compare_runs").main([f"bgnn={run}", "--columns", "full", "--markdown"])
    assert table.splitlines()[0] == "| run | R@50 | wmAP_rel | wmAP_phr | score_wtd | mR@50 | train s |"


@pytest.mark.parametrize("make_arguments, message", [
    (lambda run, other: [f"a={run}", "--columns", "full", "--trained-in", f"a={other}"],
     "no training_time.json"),
    (lambda run, other: [f"a={run}", "--columns", "full", "--trained-in", f"b={run}"], "--trained-in names no run: b"),
    (lambda run, other: [f"a={run}", "--columns", "full", "--trained-in", "a"], "give --trained-in NAME=DIR"),
])
def test_bad_trained_in_is_refused(tmp_path, make_arguments, message):
    run = write_results(tmp_path / "a", FULL_VG_RESULTS)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UserInputError, match=message):
        load_tool("compare_runs").main(make_arguments(run, str(other)))


def test_a_damaged_training_time_names_the_file(tmp_path):
    run = write_results(tmp_path / "a", FULL_VG_RESULTS)
    (tmp_path / "a" / "training_time.json").write_text('{"seconds": 3}')
    with pytest.raises(UserInputError, match="training_time.json: no first_iteration, last_iteration"):
        load_tool("compare_runs").main([f"a={run}", "--columns", "full"])

"""A stand-in interpreter for the SynthVG scripts (scripts/benchmark_table.sh, scripts/faithful_recipe.sh) in
tests: the tests put a virtualenv whose ``bin/python`` runs this file in REBALANCE_HCA_VENV, so that every tool
call of a script comes here. Each call is appended to $SHIM_LOG as one JSON line {"tool", "arguments"}. Calls
whose OUTPUT_DIR's folder name is listed in $SHIM_REAL_RUNS, and tools/compare_runs.py, run for real (the test
interpreter, this repository's code); the others only write the files the scripts and compare_runs read
(model_final.pth, predicate_confusion_matrix.npy, test_results.json, training_time.json), so that a test can
check a script's whole step list and its table in seconds and really train the few runs it names."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

TEST_DATASET = "VG_stanford_filtered_with_attribute_test"
NUM_PREDICATES = 22   # SynthVG's 21 predicates + background
FAKE_RESULTS = {**{f"{metric}@{k}": 0.5 for metric in ("R", "mR", "F") for k in (20, 50, 100)},
                **{f"mR_{group}@50": 0.25 for group in ("head", "body", "tail")}}


def option(arguments: list[str], key: str) -> str | None:
    """The value of the last ``key VALUE`` pair of the command line (the one the tools use)."""
    positions = [index for index, argument in enumerate(arguments[:-1]) if argument == key]
    return arguments[positions[-1] + 1] if positions else None


def fake_outputs(tool: str, output_dir: str) -> None:
    """The files ``tool`` would write in ``output_dir`` (fake contents that the readers accept)."""
    os.makedirs(output_dir, exist_ok=True)
    if tool in ("relation_train_net.py", "detector_pretrain_net.py"):
        open(os.path.join(output_dir, "model_final.pth"), "wb").close()
    if tool == "relation_train_net.py":
        with open(os.path.join(output_dir, "training_time.json"), "w", encoding="utf-8") as stream:
            json.dump({"seconds": 1.0, "first_iteration": 1, "last_iteration": 4}, stream)
    if tool in ("relation_train_net.py", "relation_test_net.py"):
        inference = os.path.join(output_dir, "inference", TEST_DATASET)
        os.makedirs(inference, exist_ok=True)
        with open(os.path.join(inference, "test_results.json"), "w", encoding="utf-8") as stream:
            json.dump(FAKE_RESULTS, stream)
    if tool == "compute_confusion_matrix.py":
        np.save(os.path.join(output_dir, "predicate_confusion_matrix.npy"),
                np.ones((NUM_PREDICATES, NUM_PREDICATES), dtype=np.float32))


def main(arguments: list[str]) -> None:
    tool = os.path.basename(arguments[0])
    with open(os.environ["SHIM_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"tool": tool, "arguments": arguments[1:]}) + "\n")
    output_dir = option(arguments, "OUTPUT_DIR")
    real_runs = os.environ.get("SHIM_REAL_RUNS", "").split()
    if tool == "compare_runs.py" or (output_dir and os.path.basename(output_dir) in real_runs):
        os.execv(sys.executable, [sys.executable, *arguments])
    if output_dir:
        fake_outputs(tool, output_dir)


if __name__ == "__main__":
    main(sys.argv[1:])

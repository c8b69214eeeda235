"""One table of several test runs from each run's results JSON: R@K, mR@K and F@K (SGB's protocol), or
R@50, wmAP_rel, wmAP_phr, score_wtd and mR@50 (PySGG's Open Images protocol; every run must use the same one).

    python tools/compare_runs.py NAME=OUTPUT_DIR [NAME=OUTPUT_DIR ...] [--split test] [--markdown]

Reads OUTPUT_DIR/inference/<dataset>/<split>_results.json (written by tools/relation_test_net.py and by
relation_train_net.py's final test; <dataset> is the only folder there, or give the JSON file itself) and
prints one row per run.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
from typing import Sequence

from rebalance_hca.utils.cli import UserInputError, run_tool

COLUMNS = {"vg": ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100", "F@50"),
           "oi": ("R@50", "wmAP_rel", "wmAP_phr", "score_wtd", "mR@50")}


def results_file(location: str, split: str) -> str:
    """The results JSON of a run folder (or ``location`` itself when it is a file)."""
    if os.path.isfile(location):
        return location
    matches = sorted(glob.glob(os.path.join(location, "inference", "*", f"{split}_results.json")))
    if len(matches) != 1:
        raise UserInputError(f"{location}: expected one inference/*/{split}_results.json, found {len(matches)}")
    return matches[0]


def read_results(location: str, split: str) -> tuple[str, dict]:
    """(path, results) of a run's results JSON."""
    path = results_file(location, split)
    with open(path, encoding="utf-8") as stream:
        return path, json.load(stream)


def read_row(name: str, path: str, results: dict, columns: Sequence[str]) -> list[str]:
    missing = [column for column in columns if column not in results]
    if missing:
        raise UserInputError(f"{path}: no {', '.join(missing)}")
    return [name, *(f"{100 * results[column]:.2f}" for column in columns)]


def format_table(rows: list[list[str]], columns: Sequence[str], markdown: bool) -> str:
    header = ["run", *columns]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) if i else cell.ljust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))) for row in [header, *rows])


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="NAME=OUTPUT_DIR")
    parser.add_argument("--split", default="test", choices=("val", "test", "train"))
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    runs = []
    for run in args.runs:
        name, separator, location = run.partition("=")
        if not separator:
            raise UserInputError(f"{run!r}: give runs as NAME=OUTPUT_DIR")
        runs.append((name, *read_results(location, args.split)))
    protocols = {results.get("protocol", "vg") for _, _, results in runs}
    if len(protocols) > 1:
        raise UserInputError(f"the runs were evaluated with different protocols ({', '.join(sorted(protocols))}): "
                             f"compare runs of one dataset")
    columns = COLUMNS[protocols.pop()]
    rows = [read_row(name, path, results, columns) for name, path, results in runs]
    table = format_table(rows, columns, args.markdown)
    print(f"values in %, {args.split} split")
    print(table)
    return table


if __name__ == "__main__":
    run_tool(main)

"""One table of several test runs from each run's results JSON: R@K, mR@K and F@K (SGB's protocol), or
R@50, wmAP_rel, wmAP_phr, score_wtd and mR@50 (PySGG's Open Images protocol; every run must use the same one).

    python tools/compare_runs.py NAME=OUTPUT_DIR [NAME=OUTPUT_DIR ...] [--split test] [--markdown]
        [--columns full] [--trained-in NAME=DIR[,DIR ...] ...]

Reads OUTPUT_DIR/inference/<dataset>/<split>_results.json (written by tools/relation_test_net.py and by
relation_train_net.py's final test; <dataset> is the only folder there, or give the JSON file itself) and
prints one row per run. ``--columns full`` adds, on SGB's protocol, the head/body/tail mR@50
(mR_head@50, mR_body@50, mR_tail@50), and on both protocols the training time in seconds ("train s"): the
sum of the training_time.json files (written by tools/relation_train_net.py) of the folders that
``--trained-in NAME=DIR,DIR`` lists for run NAME (e.g. stage 1 and stage 2 of one model), by default of
OUTPUT_DIR itself; "-" where the run trained nothing, ">=" where a resumed run's first part went untimed.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
from typing import Sequence

from rebalance_hca.engine.training_time import read_training_time
from rebalance_hca.utils.cli import UserInputError, run_tool

COLUMNS = {"vg": ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100", "F@50"),
           "oi": ("R@50", "wmAP_rel", "wmAP_phr", "score_wtd", "mR@50")}
FULL_COLUMNS = {"vg": (*COLUMNS["vg"], "mR_head@50", "mR_body@50", "mR_tail@50"), "oi": COLUMNS["oi"]}
TIME_COLUMN = "train s"


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
    """The row of run ``name``: its ``columns`` in % ("-" for a value its results JSON holds as null: NaN)."""
    missing = [column for column in columns if column not in results]
    if missing:
        raise UserInputError(f"{path}: no {', '.join(missing)}")
    return [name, *("-" if results[column] is None else f"{100 * results[column]:.2f}" for column in columns)]


def training_seconds(folders: Sequence[str], required: bool) -> str:
    """The summed training time of ``folders`` (their training_time.json) as the "train s" cell: whole
    seconds, ">=" first when a file did not time its run from iteration 1. A folder without the file gives
    "-" for the row, or with ``required`` (the folders --trained-in names) an error naming it."""
    records = []
    for folder in folders:
        try:
            record = read_training_time(folder)
        except ValueError as error:
            raise UserInputError(str(error)) from error
        if record is None and required:
            raise UserInputError(f"--trained-in {folder}: no training_time.json (it trained nothing, or with a "
                                 "version of tools/relation_train_net.py that did not time it)")
        if record is None:
            return "-"
        records.append(record)
    partial = any(record["first_iteration"] > 1 for record in records)
    return f"{'>=' if partial else ''}{sum(record['seconds'] for record in records):.0f}" if records else "-"


def parse_pairs(values: Sequence[str], what: str) -> list[tuple[str, str]]:
    """NAME=VALUE arguments -> [(NAME, VALUE)]; ``what`` names the form in the error."""
    pairs = []
    for value in values:
        name, separator, rest = value.partition("=")
        if not separator:
            raise UserInputError(f"{value!r}: give {what}")
        pairs.append((name, rest))
    return pairs


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
    parser.add_argument("--columns", default="short", choices=("short", "full"),
                        help="full: also head/body/tail mR@50 (SGB's protocol) and the training time")
    parser.add_argument("--trained-in", action="append", default=[], metavar="NAME=DIR[,DIR ...]",
                        help="the folders whose training times add up to run NAME's (default: its OUTPUT_DIR)")
    args = parser.parse_args(argv)
    runs = [(name, location, *read_results(location, args.split))
            for name, location in parse_pairs(args.runs, "runs as NAME=OUTPUT_DIR")]
    trained_in = {name: folders.split(",") for name, folders in parse_pairs(args.trained_in, "--trained-in NAME=DIR")}
    unknown = sorted(set(trained_in) - {name for name, *_ in runs})
    if unknown:
        raise UserInputError(f"--trained-in names no run: {', '.join(unknown)}")
    protocols = {results.get("protocol", "vg") for *_, results in runs}
    if len(protocols) > 1:
        raise UserInputError(f"the runs were evaluated with different protocols ({', '.join(sorted(protocols))}): "
                             f"compare runs of one dataset")
    protocol = protocols.pop()
    columns = (FULL_COLUMNS if args.columns == "full" else COLUMNS)[protocol]
    rows = [read_row(name, path, results, columns) for name, _, path, results in runs]
    if args.columns == "full":
        for row, (name, location, _, _) in zip(rows, runs):
            if name in trained_in:
                row.append(training_seconds(trained_in[name], required=True))
            else:
                row.append(training_seconds([location] if os.path.isdir(location) else [], required=False))
        columns = (*columns, TIME_COLUMN)
    table = format_table(rows, columns, args.markdown)
    print(f"values in %, {args.split} split")
    print(table)
    return table


if __name__ == "__main__":
    run_tool(main)

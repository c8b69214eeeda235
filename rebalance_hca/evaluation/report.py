"""Reports: SGB's printed text block (docs/reference.md#sgb-report-format),
a results JSON and a per-predicate recall bar chart."""
from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Mapping, Sequence

import numpy as np

from ..utils.atomic import atomic_write
from .sgg import predicate_groups

__all__ = ["format_sgb_report", "save_results_json", "plot_per_predicate_recall", "write_report_files"]

_RULE = "=" * 100
_DETAILS_OPEN = "----------------------- Details ------------------------"
_DETAILS_CLOSE = "--------------------------------------------------------"
# (result key prefix, SGB's per-K format, SGB's line type), in SGB's print order
_SGB_LINES = (("R", "    R @ %d: %.4f; ", "Recall(Main)."),
              ("ng-R", " ng-R @ %d: %.4f; ", "No Graph Constraint Recall(Main)."),
              ("zR", "   zR @ %d: %.4f; ", "Zero Shot Recall."),
              ("ng-zR", "ng-zR @ %d: %.4f; ", "No Graph Constraint Zero Shot Recall."),
              ("mR", "   mR @ %d: %.4f; ", "Mean Recall."),
              ("ng-mR", "ng-mR @ %d: %.4f; ", "No Graph Constraint Mean Recall."),
              ("A", "    A @ %d: %.4f; ", "TopK Accuracy."))
# lines for this project's additions, printed after SGB's block in the same style
_EXTRA_LINES = (("F", "    F @ %d: %.4f; ", "Harmonic Mean of Recall and Mean Recall."),
                ("mR_head", " head-mR @ %d: %.4f; ", "Head Mean Recall."),
                ("mR_body", " body-mR @ %d: %.4f; ", "Body Mean Recall."),
                ("mR_tail", " tail-mR @ %d: %.4f; ", "Tail Mean Recall."))


def result_ks(results: Mapping[str, Any]) -> list[int]:
    """The Ks present in a results dict (from its "R@K" keys), ascending."""
    return sorted(int(match.group(1)) for key in results if (match := re.fullmatch(r"R@(\d+)", key)))


def format_sgb_report(results: Mapping[str, Any], mode: str, predicate_names: Sequence[str],
                      detection_map: float | None = None) -> str:
    """SGB's evaluation text block, byte for byte in SGB's line formats, then this project's extra lines.

    results: :meth:`SGGEvaluator.summarize` output. predicate_names: index 0 = background. The per-predicate
    details are at K = 100 (SGB's choice), or the largest K when 100 is absent. detection_map: the
    detector AP@0.5 ("mAp" line), omitted when None. The A@K line appears in predcls/sgcls only.
    """
    ks = result_ks(results)
    detail_k = 100 if 100 in ks else ks[-1]
    text = "\n" + _RULE + "\n"
    if detection_map is not None:
        text += "Detection evaluation mAp=%.4f\n" % detection_map + _RULE + "\n"
    for prefix, per_k, line_type in _SGB_LINES:
        if prefix == "A" and mode == "sgdet":
            continue
        text += _metric_line(results, prefix, per_k, line_type, mode, ks)
        if prefix in ("mR", "ng-mR"):
            recalls = results[f"{prefix}_per_predicate@{detail_k}"]
            text += _DETAILS_OPEN + "\n"
            text += "".join("({}:{:.4f}) ".format(str(name), recall)
                            for name, recall in zip(list(predicate_names)[1:], recalls))
            text += "\n" + _DETAILS_CLOSE + "\n"
    text += _RULE + "\n"
    for prefix, per_k, line_type in _EXTRA_LINES:
        text += _metric_line(results, prefix, per_k, line_type, mode, ks)
    return text


def _metric_line(results: Mapping[str, Any], prefix: str, per_k: str, line_type: str, mode: str,
                 ks: Sequence[int]) -> str:
    return ("SGG eval: " + "".join(per_k % (k, results[f"{prefix}@{k}"]) for k in ks)
            + " for mode=%s, type=%s" % (mode, line_type) + "\n")


def save_results_json(path: str | os.PathLike, results: Mapping[str, Any],
                      extra: Mapping[str, Any] | None = None) -> None:
    """Write results (plus ``extra`` entries, e.g. detection stats) as JSON, NaN as null, atomically."""
    payload = _json_ready({**dict(results), **dict(extra or {})})
    with atomic_write(str(path), binary=False) as stream:
        json.dump(payload, stream, indent=2, sort_keys=True, allow_nan=False)
        stream.write("\n")


def plot_per_predicate_recall(path: str | os.PathLike, results: Mapping[str, Any], predicate_names: Sequence[str],
                              predicate_counts: Any = None, k: int = 100, title: str | None = None) -> None:
    """Bar chart (PNG) of per-predicate recall@k, predicates sorted by training frequency (most first).

    predicate_counts: (num_predicates,) training counts (index 0 ignored); with them, bars are coloured by
    head/body/tail group (:func:`predicate_groups`) and the counts are drawn as a line on a log axis.
    Without them predicates keep their id order. Uses matplotlib's Agg canvas (no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    recalls = np.asarray(results[f"mR_per_predicate@{k}"], dtype=np.float64)
    names = list(predicate_names)[1:]
    palette = {"head": "tab:blue", "body": "tab:orange", "tail": "tab:red"}
    if predicate_counts is not None:
        counts = np.asarray(predicate_counts, dtype=np.float64)
        groups = predicate_groups(counts)
        order = [c - 1 for name in palette for c in groups[name]]
        bar_colours = [palette[name] for name in palette for _ in groups[name]]
    else:
        order = list(range(len(names)))
        bar_colours = [palette["head"]] * len(names)
    figure = Figure(figsize=(max(8.0, 0.28 * len(names) + 2.0), 5.0), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(order))
    axes.bar(positions, recalls[order], color=bar_colours)
    mean_line = axes.axhline(results[f"mR@{k}"], color="black", linestyle="--", linewidth=1,
                             label=f"mR@{k} = {results[f'mR@{k}']:.4f}")
    axes.set_xticks(positions)
    axes.set_xticklabels([names[i] for i in order], rotation=90, fontsize=7)
    axes.set_ylabel(f"recall@{k}")
    axes.set_ylim(0, 1)
    axes.set_xlim(-0.6, len(order) - 0.4)
    handles = [mean_line]
    if predicate_counts is not None:
        count_axes = axes.twinx()
        count_axes.plot(positions, np.maximum(counts[1:][order], 1), color="gray", marker=".", linewidth=1)
        count_axes.set_yscale("log")
        count_axes.set_ylabel("training count (line)")
        handles = [Patch(color=palette[name], label=f"{name} ({len(groups[name])})") for name in palette] + handles
    axes.legend(handles=handles, loc="upper right", fontsize=8)
    axes.set_title(title or f"{results.get('mode', '')} per-predicate recall@{k}, most frequent predicates first")
    figure.tight_layout()
    with atomic_write(str(path)) as stream:
        figure.savefig(stream, format="png")


def write_report_files(output_dir: str | os.PathLike, prefix: str, evaluation: Mapping[str, Any],
                       predicate_names: Sequence[str], predicate_counts: Any = None,
                       extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Write ``<prefix>_report.txt``, ``<prefix>_results.json`` and ``<prefix>_per_predicate_recall.png``.

    evaluation: :func:`evaluate_predictions` output. Returns {"report", "results", "plot"} -> paths.
    """
    paths = write_report_and_results(output_dir, prefix, "per_predicate_recall.png", evaluation["report"],
                                     evaluation["sgg"], {"detection": evaluation["detection"],
                                                         "predicate_names": list(predicate_names),
                                                         **dict(extra or {})})
    ks = result_ks(evaluation["sgg"])
    plot_per_predicate_recall(paths["plot"], evaluation["sgg"], predicate_names, predicate_counts,
                              k=100 if 100 in ks else ks[-1])
    return paths


def write_report_and_results(output_dir: str | os.PathLike, prefix: str, plot_name: str, report: str,
                             results: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, str]:
    """Write ``<prefix>_report.txt`` and ``<prefix>_results.json`` (results + metadata) atomically; returns
    {"report", "results", "plot"} -> paths, the plot being ``<prefix>_<plot_name>`` (for the caller to draw)."""
    paths = {name: os.path.join(str(output_dir), f"{prefix}_{suffix}")
             for name, suffix in (("report", "report.txt"), ("results", "results.json"), ("plot", plot_name))}
    with atomic_write(paths["report"], binary=False) as stream:
        stream.write(report)
    save_results_json(paths["results"], results, metadata)
    return paths


def _json_ready(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_ready(item) for item in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value

"""Open Images V6 reports: PySGG's printed OI text (docs/reference.md#oi-report-format),
a results JSON and a per-predicate
AP / recall bar chart."""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..utils.atomic import atomic_write
from .oi import CLASSIC_RECALL_KS
from .report import write_report_and_results

__all__ = ["format_oi_report", "plot_oi_per_predicate", "write_oi_report_files"]

_DETECTION_RULE = "=" * 100
_BLOCK_RULE = "=" * 80
# PySGG's classic block: (result key prefix, per-K format, line type), in its print order
_CLASSIC_LINES = (("R", "  R @ %d: %.4f; ", "Recall(Main)."),
                  ("ng-R", "ngR @ %d: %.4f; ", "No Graph Constraint Recall(Main)."),
                  ("mR", " mR @ %d: %.4f; ", "Mean Recall."))


def format_oi_report(results: Mapping[str, Any], predicate_names: Sequence[str],
                     detection_map: float | None = None) -> str:
    """PySGG's OI evaluation text in its line formats: detection, classic recall block, OI block.

    results: :meth:`OIEvaluator.summarize` output. predicate_names: index 0 = background.
    detection_map: the detector AP@0.5 ("mAp" line), omitted when None. PySGG's stagewise-recall lines
    and its detection "recall@100 IOU:0.5" line are not produced (no evaluator here computes them).
    After PySGG's text, one line of this project: the headline OI numbers (percent) with mR@50.
    """
    mode, classic = results["mode"], results["classic"]
    names = [str(name) for name in list(predicate_names)[1:]]
    text = "\n" + _DETECTION_RULE + "\n"
    if detection_map is not None:
        text += "Detection evaluation mAp=%.4f\n" % detection_map + _DETECTION_RULE + "\n"
    text += "classic recall evaluations:\n"
    for prefix, per_k, line_type in _CLASSIC_LINES:
        text += ("SGG eval: " + "".join(per_k % (k, classic[f"{prefix}@{k}"]) for k in CLASSIC_RECALL_KS)
                 + " for mode=%s, type=%s" % (mode, line_type) + "\n")
    for k in (50, 100):
        text += f"Per-class recall@{k}: \n"
        text += "".join("({}:{:.4f}) ".format(name, recall)
                        for name, recall in zip(names, results[f"mR_per_predicate@{k}"]))
        text += "\n"
    text += "\n\n" + _BLOCK_RULE + "\n"
    total = float(sum(results["npos_per_predicate"]))
    for name, label in (("rel", "rel"), ("phr", "phr")):
        text += "\n{} mAP: {:.2f}, weighted {} mAP: {:.2f}\n".format(label, 100 * results[f"mAP_{name}"], label,
                                                                    100 * results[f"wmAP_{name}"])
        text += f"{label} AP perclass: AP/ weighted-AP (recall)\n"
        for predicate, ap, count in zip(names, results[f"AP_{name}_per_predicate"], results["npos_per_predicate"]):
            weighted_ap = ap * float(count) / total if total else float("nan")
            weight = float(count) / total if total else float("nan")
            text += "{}: {:.3f} / {:.3f} ({:.6f}), ".format(predicate, 100 * ap, 100 * weighted_ap, weight)
        text += "\n\n"
    text += "recall@50: {:.2f}, recall@100: {:.2f}\n".format(100 * results["R@50"], 100 * results["R@100"])
    text += "recall@50: {:.2f}, recall@100: {:.2f} (per images)\n\n".format(100 * results["R@50_per_image"],
                                                                           100 * results["R@100_per_image"])
    text += "weighted_res: 0.4 * w_rel_mAP + 0.2 * recall@50 + 0.4 * w_phr_mAP \n"
    text += "final_score:{:.2f}  weighted final_score: {:.2f}\n".format(100 * results["final_score"],
                                                                         100 * results["score_wtd"])
    text += _BLOCK_RULE + "\n\n"
    text += ("OI summary (percent): R@50 {:.2f}; wmAP_rel {:.2f}; wmAP_phr {:.2f}; score_wtd {:.2f}; "
             "mR@50 {:.2f}; for mode={}\n").format(100 * results["R@50"], 100 * results["wmAP_rel"],
                                                   100 * results["wmAP_phr"], 100 * results["score_wtd"],
                                                   100 * results["mR@50"], mode)
    return text


def plot_oi_per_predicate(path: str | os.PathLike, results: Mapping[str, Any], predicate_names: Sequence[str],
                          title: str | None = None) -> None:
    """Bar chart (PNG) per predicate, most test GT first: relation AP, phrase AP and classic recall@50,
    with the test GT counts (the wmAP weights) as a line on a log axis. Matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(predicate_names)[1:]
    counts = np.asarray(results["npos_per_predicate"], dtype=np.float64)
    order = np.argsort(-counts, kind="stable")
    series = (("AP_rel_per_predicate", "relation AP", "tab:blue"), ("AP_phr_per_predicate", "phrase AP", "tab:orange"),
              ("mR_per_predicate@50", "recall@50 (classic)", "tab:green"))
    figure = Figure(figsize=(max(8.0, 0.45 * len(names) + 2.0), 5.0), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(order))
    width = 0.8 / len(series)
    for index, (key, label, colour) in enumerate(series):
        axes.bar(positions + (index - 1) * width, np.asarray(results[key], dtype=np.float64)[order], width,
                 color=colour, label=label)
    axes.set_xticks(positions)
    axes.set_xticklabels([names[i] for i in order], rotation=90, fontsize=7)
    axes.set_ylim(0, 1)
    axes.set_xlim(-0.6, len(order) - 0.4)
    axes.legend(loc="upper right", fontsize=8)
    count_axes = axes.twinx()
    count_axes.plot(positions, np.maximum(counts[order], 1), color="gray", marker=".", linewidth=1)
    count_axes.set_yscale("log")
    count_axes.set_ylabel("test GT relations (line)")
    axes.set_title(title or (f"{results.get('mode', '')} OI per-predicate AP and recall@50: wmAP_rel "
                             f"{results['wmAP_rel']:.4f}, wmAP_phr {results['wmAP_phr']:.4f}, "
                             f"mR@50 {results['mR@50']:.4f}"))
    figure.tight_layout()
    with atomic_write(str(path)) as stream:
        figure.savefig(stream, format="png")


def write_oi_report_files(output_dir: str | os.PathLike, prefix: str, evaluation: Mapping[str, Any],
                          predicate_names: Sequence[str], extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Write ``<prefix>_report.txt``, ``<prefix>_results.json`` and ``<prefix>_per_predicate_ap.png``.

    evaluation: :func:`evaluate_oi_predictions` output. Returns {"report", "results", "plot"} -> paths.
    """
    paths = write_report_and_results(output_dir, prefix, "per_predicate_ap.png", evaluation["report"],
                                     evaluation["oi"], {"protocol": "oi", "detection": evaluation["detection"],
                                                        "predicate_names": list(predicate_names),
                                                        **dict(extra or {})})
    plot_oi_per_predicate(paths["plot"], evaluation["oi"], predicate_names)
    return paths

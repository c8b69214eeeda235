"""Ground truth and predictions of dataset images side by side, for studying errors (tools/visualize.py).

One row per image, three square panels of ``panel_size`` pixels: the ground truth (relations found by the
prediction within the top K in green, missed ones in red), the prediction (its top wrong triplets in orange,
right ones in green) and the lists in words. The PNG is (3 x panel_size, rows x panel_size) pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .drawing import box_centre, draw_arrow, draw_box, font_size, new_figure, save_png, show_image

FOUND, MISSED, WRONG = "tab:green", "tab:red", "tab:orange"
TITLE_SPACE = 0.08  # fraction of a row above an image panel, for its title


@dataclass
class ErrorAnalysisImage:
    """One image to draw. image: (H, W, 3) BGR uint8. gt_boxes (n, 4), gt_labels (n,), gt_relations (m, 3)
    [subject, object, predicate] in the image's frame. match: ``SGGEvaluator.match_image``'s dict. title: a
    caption (e.g. the dataset index and image id)."""

    image: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_relations: np.ndarray
    match: dict[str, np.ndarray]
    title: str


def error_analysis_png_size(num_images: int, panel_size: int) -> tuple[int, int]:
    """(width, height) in pixels of ``draw_error_analysis``'s PNG."""
    return 3 * panel_size, num_images * panel_size


def draw_error_analysis(path: str, images: Sequence[ErrorAnalysisImage], class_names: Sequence[str],
                        predicate_names: Sequence[str], k: int, top_wrong: int = 5, panel_size: int = 480) -> None:
    """Write the PNG (module docstring): found / missed GT triplets at K, the ``top_wrong`` best-ranked
    predictions within the top K that match no GT triplet."""
    width, height = error_analysis_png_size(len(images), panel_size)
    figure = new_figure(width, height)
    size = font_size(panel_size)
    for row, item in enumerate(images):
        bottom, row_height = 1 - (row + 1) / len(images), 1 / len(images)
        # the image panels leave room for their titles at the top of the row
        panels = [figure.add_axes((column / 3, bottom, 1 / 3, row_height * (1 - TITLE_SPACE if column < 2 else 1)))
                  for column in range(3)]
        lines = _draw_groundtruth(panels[0], item, class_names, predicate_names, k, size)
        lines += _draw_prediction(panels[1], item, class_names, predicate_names, k, top_wrong, size)
        panels[2].set_axis_off()
        panels[2].text(0.02, 0.98, "\n".join([item.title, *lines]), fontsize=size * 0.9, va="top", ha="left",
                       family="monospace", transform=panels[2].transAxes, wrap=True)
    save_png(figure, path)


def _triplet_text(subject: int, obj: int, predicate: int, labels: np.ndarray, class_names: Sequence[str],
                  predicate_names: Sequence[str]) -> str:
    return f"{class_names[int(labels[subject])]} {predicate_names[int(predicate)]} {class_names[int(labels[obj])]}"


def _draw_groundtruth(axes, item: ErrorAnalysisImage, class_names, predicate_names, k: int, size: float) -> list[str]:
    show_image(axes, item.image)
    axes.set_aspect("equal")
    axes.set_title(f"ground truth: found at {k} (green), missed (red)", fontsize=size)
    members = np.unique(item.gt_relations[:, :2]) if len(item.gt_relations) else np.zeros(0, dtype=np.int64)
    for index in members:
        draw_box(axes, item.gt_boxes[index], f"{index} {class_names[int(item.gt_labels[index])]}", "tab:blue", size)
    found_lines, missed_lines = [], []
    for (subject, obj, predicate), rank in zip(item.gt_relations.tolist(), item.match["gt_rank"].tolist()):
        found = 0 <= rank < k
        colour = FOUND if found else MISSED
        draw_arrow(axes, box_centre(item.gt_boxes[subject]), box_centre(item.gt_boxes[obj]),
                   predicate_names[predicate], colour, size * 0.9)
        text = _triplet_text(subject, obj, predicate, item.gt_labels, class_names, predicate_names)
        if found:
            found_lines.append(f"  #{rank:<3d} {subject}-{obj} {text}")
        else:
            missed_lines.append(f"  {'-' if rank < 0 else f'#{rank}'}  {subject}-{obj} {text}")
    return [f"GT found at {k}: {len(found_lines)} of {len(item.gt_relations)}", *found_lines,
            f"GT missed: {len(missed_lines)}", *missed_lines]


def _draw_prediction(axes, item: ErrorAnalysisImage, class_names, predicate_names, k: int, top_wrong: int,
                     size: float) -> list[str]:
    show_image(axes, item.image)
    axes.set_aspect("equal")
    axes.set_title(f"prediction: top {top_wrong} wrong (orange), right (green)", fontsize=size)
    match = item.match
    pairs, labels = match["pair_idxs"][:k], match["pair_labels"][:k]
    matched = match["pair_matched"][:k]
    wrong = np.flatnonzero(~matched)[:top_wrong]
    right = np.flatnonzero(matched)
    boxes, object_labels = match["boxes"], match["labels"]
    for index in np.unique(pairs[np.concatenate([wrong, right])].ravel()) if len(pairs) else []:
        draw_box(axes, boxes[index], f"{index} {class_names[int(object_labels[index])]}", "tab:gray", size,
                 linestyle="--")
    lines = [f"top wrong predictions (of the top {k}):"]
    for rank in [*right.tolist(), *wrong.tolist()]:
        subject, obj = pairs[rank]
        colour = FOUND if matched[rank] else WRONG
        draw_arrow(axes, box_centre(boxes[subject]), box_centre(boxes[obj]), predicate_names[int(labels[rank])],
                   colour, size * 0.9)
    for rank in wrong.tolist():
        subject, obj = pairs[rank]
        score = match["pair_scores"][rank]
        lines.append(f"  #{rank:<3d} {subject}-{obj} "
                     f"{_triplet_text(subject, obj, labels[rank], object_labels, class_names, predicate_names)}"
                     f" (p={score:.2f})")
    return lines

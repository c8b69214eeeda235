"""Drawing scene graphs with matplotlib's Agg canvas (no display, no graphviz): boxes with class names,
relations as labelled arrows between box centres, and a scene graph laid out on a circle.

Figures are made at ``DPI`` dots per inch with a size in whole pixels, so a PNG's size is known in advance
(``scene_graph_png_size``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..utils.atomic import atomic_write

DPI = 100
ARROW_CURVATURE = 0.12
BOX_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
               "tab:olive", "tab:cyan", "tab:gray")


def drawn_size(width: int, height: int, draw_size: int) -> tuple[int, int]:
    """(w, h) of a width x height image drawn with its longer side ``draw_size`` pixels (at least 1 each)."""
    scale = draw_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def scene_graph_png_size(width: int, height: int, draw_size: int) -> tuple[int, int]:
    """(width, height) in pixels of ``draw_scene_graph``'s PNG: the drawn image and a square graph beside it."""
    image_width, image_height = drawn_size(width, height, draw_size)
    return image_width + image_height, image_height


def circle_layout(num_nodes: int) -> np.ndarray:
    """Node centres on a circle in the unit square, the first at the top, clockwise: -> (n, 2) (x, y), y down."""
    angles = -math.pi / 2 + 2 * math.pi * np.arange(num_nodes) / max(num_nodes, 1)
    radius = 0.0 if num_nodes == 1 else 0.38
    return np.column_stack([0.5 + radius * np.cos(angles), 0.5 + radius * np.sin(angles)])


def new_figure(width: int, height: int):
    """A matplotlib Figure of width x height pixels on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, path: str) -> None:
    """Write the figure as a PNG of exactly its pixel size, atomically."""
    with atomic_write(path) as stream:
        figure.canvas.print_png(stream)


def font_size(panel_pixels: int) -> float:
    """A label size in points readable on a panel of that many pixels."""
    return max(6.0, panel_pixels / 70)


def show_image(axes, image_bgr: np.ndarray) -> None:
    """The BGR uint8 (H, W, 3) image filling ``axes``, in pixel coordinates (y down), without ticks."""
    height, width = image_bgr.shape[:2]
    axes.imshow(image_bgr[:, :, ::-1], extent=(0, width, height, 0), interpolation="bilinear")
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_axis_off()


def draw_box(axes, box: Sequence[float], text: str, colour: str, size: float, linestyle: str = "-") -> None:
    """One xyxy box with its label above its top-left corner."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(value) for value in box)
    axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5,
                             linestyle=linestyle))
    axes.text(x1, y1, text, fontsize=size, color="white", va="bottom", ha="left", clip_on=True,
              bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"})


def draw_arrow(axes, start: Sequence[float], end: Sequence[float], text: str, colour: str, size: float,
               shrink: float = 0.0) -> None:
    """A slightly curved arrow from ``start`` to ``end`` (data coordinates of an axes with equal aspect and y
    down) with ``text`` at the middle of the curve (so that the two directions between two objects part)."""
    axes.annotate("", xy=tuple(end), xytext=tuple(start),
                  arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.5, "shrinkA": shrink,
                              "shrinkB": shrink, "connectionstyle": f"arc3,rad={ARROW_CURVATURE}"})
    start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    dx, dy = end - start
    # matplotlib's arc3 is a quadratic Bezier whose control point lies rad x the chord off its middle; the
    # curve passes half as far off, to the left of the chord in display coordinates (y up).
    middle = (start + end) / 2 + ARROW_CURVATURE / 2 * np.array([-dy, dx])
    axes.text(middle[0], middle[1], text, fontsize=size, color=colour, ha="center", va="center", clip_on=True,
              bbox={"facecolor": "white", "alpha": 0.85, "pad": 1, "edgecolor": colour})


def box_centre(box: Sequence[float]) -> tuple[float, float]:
    x1, y1, x2, y2 = (float(value) for value in box)
    return (x1 + x2) / 2, (y1 + y2) / 2


def draw_graph(axes, node_names: Sequence[str], node_colours: Sequence[str],
               edges: Sequence[tuple[int, int, str, str]], size: float) -> None:
    """A scene graph in ``axes`` (unit square): named nodes on a circle and edges (subject, object,
    predicate, colour) as labelled arrows."""
    axes.set_xlim(0, 1)
    axes.set_ylim(1, 0)
    axes.set_axis_off()
    positions = circle_layout(len(node_names))
    for (subject, obj, predicate, colour) in edges:
        draw_arrow(axes, positions[subject], positions[obj], predicate, colour, size * 0.9, shrink=size * 1.6)
    for position, name, colour in zip(positions, node_names, node_colours):
        axes.text(position[0], position[1], name, fontsize=size, ha="center", va="center", color="white",
                  bbox={"boxstyle": "round", "facecolor": colour, "edgecolor": "none", "alpha": 0.95})


def draw_scene_graph(path: str, image_bgr: np.ndarray, document: dict[str, Any], draw_size: int = 640) -> None:
    """The PNG of tools/demo.py: the image with the document's objects and top relations, and beside it the
    scene graph of those relations (``scene_graph_png_size`` pixels). image_bgr: (H, W, 3) uint8, the
    document's frame."""
    height, width = image_bgr.shape[:2]
    image_width, image_height = drawn_size(width, height, draw_size)
    png_width, png_height = scene_graph_png_size(width, height, draw_size)
    figure = new_figure(png_width, png_height)
    size = font_size(image_height)
    image_axes = figure.add_axes((0, 0, image_width / png_width, 1))
    show_image(image_axes, image_bgr)
    objects = document["objects"]
    colours = [BOX_COLOURS[index % len(BOX_COLOURS)] for index in range(len(objects))]
    for item, colour in zip(objects, colours):
        draw_box(image_axes, item["box"], f"{item['id']} {item['label']} {item['score']:.2f}", colour, size)
    related = sorted({relation[key] for relation in document["relations"] for key in ("subject", "object")})
    node_of = {object_id: node for node, object_id in enumerate(related)}
    edges = []
    for relation in document["relations"]:
        subject, obj = objects[relation["subject"]], objects[relation["object"]]
        draw_arrow(image_axes, box_centre(subject["box"]), box_centre(obj["box"]), relation["predicate"],
                   colours[relation["subject"]], size)
        edges.append((node_of[relation["subject"]], node_of[relation["object"]], relation["predicate"],
                      colours[relation["subject"]]))
    graph_axes = figure.add_axes((image_width / png_width, 0, image_height / png_width, 1))
    draw_graph(graph_axes, [f"{objects[i]['id']} {objects[i]['label']}" for i in related],
               [colours[i] for i in related], edges, size)
    save_png(figure, path)

"""Drawing SynthVG scenes: class-specific shapes, colours and textures on a noisy sky/floor background.

Objects are drawn far to near (by depth), so nearer objects occlude farther ones exactly as the relation
rules assume. Every shape of an object stays inside its box; shapes are given in fractions of the box,
mirrored for objects facing left.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .scene import Scene, SceneObject
from .vocabulary import COLOURS_BGR

JPEG_QUALITY = 90
PIXEL_NOISE = 7
COLOUR_JITTER = 18
SKIN_TONES = ((120, 160, 220), (90, 130, 190), (60, 90, 140), (150, 185, 230))
DARK = (30, 30, 30)


def _jitter(rng: np.random.Generator, colour, amount: int = COLOUR_JITTER) -> tuple[int, int, int]:
    values = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return tuple(int(v) for v in values)


def _texture_patch(height: int, width: int, colour, texture: str | None, rng: np.random.Generator) -> np.ndarray:
    """A (height, width, 3) uint8 patch of ``colour`` with the named pattern."""
    patch = np.empty((height, width, 3), np.float32)
    patch[:] = colour
    if texture is None:
        return patch.astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    contrast = np.array((235, 235, 235) if np.mean(colour) < 140 else (40, 40, 40), np.float32)
    if texture == "striped":
        period = max(2, height // 7)
        patch[(yy // period) % 2 == 0] = contrast
    elif texture == "checkered":
        period = max(2, min(height, width) // 4)
        patch[(xx // period + yy // period) % 2 == 0] *= 0.5
    elif texture == "dotted":
        period = max(4, min(height, width) // 4)
        near_centre = ((xx % period) - period / 2) ** 2 + ((yy % period) - period / 2) ** 2
        patch[near_centre <= (period / 3.2) ** 2] = contrast
    elif texture == "wooden":
        phase = rng.uniform(0, 2 * np.pi)
        patch *= (0.82 + 0.18 * np.sin(yy * 1.3 + 2.0 * np.sin(xx * 0.12 + phase)))[..., None]
    elif texture == "brick":
        row = max(3, height // 12)
        offset = ((yy // row) % 2) * row
        mortar = (yy % row == 0) | ((xx + offset) % (2 * row) == 0)
        patch[mortar] = (190, 190, 190)
    elif texture == "leafy":
        cells = rng.uniform(0.6, 1.3, (height // 3 + 1, width // 3 + 1))
        patch *= cells[yy // 3, xx // 3][..., None]
    elif texture == "blades":  # grass: short vertical streaks
        streaks = rng.uniform(0.75, 1.2, (height // 4 + 1, width))
        patch *= streaks[yy // 4, xx][..., None]
    return np.clip(patch, 0, 255).astype(np.uint8)


class _ObjectCanvas:
    """Draws inside one object's box with coordinates given as fractions (fx, fy) of the box; fx is
    mirrored for objects facing left."""

    def __init__(self, image: np.ndarray, obj: SceneObject, rng: np.random.Generator) -> None:
        self.image, self.rng, self.facing = image, rng, obj.facing
        self.x1, self.y1, x2, y2 = (int(v) for v in obj.box)
        self.region = image[self.y1:y2, self.x1:x2].copy()
        self.height, self.width = self.region.shape[:2]
        self.colour = _jitter(rng, COLOURS_BGR[obj.colour])
        self.texture = obj.texture

    def px(self, fx: float, fy: float) -> tuple[int, int]:
        fx = fx if self.facing > 0 else 1.0 - fx
        return int(round(fx * (self.width - 1))), int(round(fy * (self.height - 1)))

    def size(self, f: float) -> int:
        """A length: fraction f of the box height, at least one pixel."""
        return max(1, int(round(f * self.height)))

    def _paint(self, draw: Callable[[np.ndarray, object], None], colour, texture: str | None) -> None:
        if texture is None:
            draw(self.region, colour)
            return
        mask = np.zeros((self.height, self.width), np.uint8)
        draw(mask, 255)
        inside = mask > 0
        self.region[inside] = _texture_patch(self.height, self.width, colour, texture, self.rng)[inside]

    def poly(self, points, colour, texture: str | None = None) -> None:
        pts = np.array([self.px(fx, fy) for fx, fy in points], np.int32)
        self._paint(lambda target, c: cv2.fillPoly(target, [pts], c, cv2.LINE_AA if texture is None else 8),
                    colour, texture)

    def rect(self, fx1: float, fy1: float, fx2: float, fy2: float, colour, texture: str | None = None) -> None:
        self.poly([(fx1, fy1), (fx2, fy1), (fx2, fy2), (fx1, fy2)], colour, texture)

    def ellipse(self, fx: float, fy: float, fw: float, fh: float, colour, texture: str | None = None,
                angle: float = 0.0, thickness: int = -1) -> None:
        centre = self.px(fx, fy)
        axes = (max(1, int(round(fw * self.width))), max(1, int(round(fh * self.height))))
        self._paint(lambda target, c: cv2.ellipse(target, centre, axes, angle * self.facing, 0, 360, c, thickness),
                    colour, texture)

    def circle(self, fx: float, fy: float, radius: int, colour, thickness: int = -1) -> None:
        cv2.circle(self.region, self.px(fx, fy), max(1, radius), colour, thickness, cv2.LINE_AA)

    def line(self, a, b, colour, thickness: int) -> None:
        cv2.line(self.region, self.px(*a), self.px(*b), colour, max(1, thickness), cv2.LINE_AA)

    def finish(self) -> None:
        self.image[self.y1:self.y1 + self.height, self.x1:self.x1 + self.width] = self.region


# ------------------------------------------------------------------------------------------------ people
def _draw_person(c: _ObjectCanvas, obj: SceneObject) -> None:
    rng = c.rng
    skin = _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 10)
    legs = _jitter(rng, (120, 60, 30) if obj.name == "man" else (60, 60, 60), 20)
    folded = 1.25 if obj.pose in ("sitting", "riding") else 1.0  # a shorter box around the same head
    radius = c.size({"child": 0.15, "man": 0.105, "woman": 0.105}[obj.name] * folded)
    head_y = radius / max(1, c.height - 1)
    limb = max(1, int(0.09 * c.width if obj.pose == "standing" else 0.07 * c.width))
    if obj.pose == "sitting":
        torso_x, hip_y = 0.3, 0.6
        c.line((torso_x, hip_y), (0.9, hip_y), legs, limb + 1)
        c.line((0.9, hip_y), (0.92, 1.0), legs, limb)
    elif obj.pose == "riding":
        torso_x, hip_y = 0.5, 0.55
        c.line((0.5, hip_y), (0.62, 0.8), legs, limb + 1)
        c.line((0.62, 0.8), (0.55, 1.0), legs, limb)
    elif obj.pose == "walking":
        torso_x, hip_y = 0.5, 0.6
        c.line((0.5, hip_y), (0.12, 1.0), legs, limb)
        c.line((0.5, hip_y), (0.88, 1.0), legs, limb)
    else:
        torso_x, hip_y = 0.5, 0.6
        c.rect(0.3, hip_y, 0.46, 1.0, legs)
        c.rect(0.54, hip_y, 0.7, 1.0, legs)
    half = 0.22 if obj.pose == "standing" else 0.16
    shoulder_y = 2.1 * head_y
    if obj.name == "woman":
        c.ellipse(torso_x, 1.6 * head_y, 0.16, 1.5 * head_y, _jitter(rng, (20, 40, 70)))
        c.poly([(torso_x - half, shoulder_y), (torso_x + half, shoulder_y), (torso_x + 1.8 * half, hip_y + 0.12),
                (torso_x - 1.8 * half, hip_y + 0.12)], c.colour, c.texture)
    else:
        c.rect(torso_x - half, shoulder_y, torso_x + half, hip_y, c.colour, c.texture)
    arm = max(1, limb - 1)
    reach = 0.95 if obj.pose in ("walking", "sitting") else torso_x + half + 0.06
    c.line((torso_x + half, shoulder_y + 0.03), (min(reach, 0.98), hip_y - 0.05), skin, arm)
    c.line((torso_x - half, shoulder_y + 0.03), (max(0.02, torso_x - half - 0.06), hip_y - 0.02), skin, arm)
    c.circle(torso_x, head_y, radius, skin)


# ----------------------------------------------------------------------------------------------- animals
def _draw_dog(c: _ObjectCanvas, obj: SceneObject) -> None:
    dark = tuple(int(v * 0.6) for v in c.colour)
    if obj.pose == "lying":
        c.ellipse(0.45, 0.65, 0.38, 0.33, c.colour)
        c.circle(0.85, 0.4, c.size(0.3), c.colour)
        c.ellipse(0.9, 0.5, 0.08, 0.12, dark)
        c.line((0.08, 0.7), (0.0, 0.9), dark, c.size(0.1))
        return
    if obj.pose == "sitting":
        c.ellipse(0.45, 0.62, 0.3, 0.3, c.colour, angle=-50)
        c.circle(0.68, 0.2, c.size(0.17), c.colour)
        c.line((0.62, 0.6), (0.65, 1.0), dark, c.size(0.07))
        c.ellipse(0.2, 0.95, 0.18, 0.05, dark)
        return
    spread = 0.12 if obj.pose == "walking" else 0.0
    c.ellipse(0.45, 0.45, 0.33, 0.2, c.colour)
    for x in (0.2, 0.33, 0.57, 0.7):
        c.line((x, 0.55), (x + (spread if x < 0.45 else -spread), 1.0), dark, c.size(0.08))
    c.circle(0.84, 0.25, c.size(0.19), c.colour)
    c.ellipse(0.82, 0.14, 0.04, 0.12, dark)
    c.line((0.12, 0.4), (0.0, 0.1), dark, c.size(0.06))


def _draw_horse(c: _ObjectCanvas, obj: SceneObject) -> None:
    dark = tuple(int(v * 0.45) for v in c.colour)
    spread = 0.08 if obj.pose == "walking" else 0.0
    for x in (0.18, 0.3, 0.6, 0.72):
        c.line((x, 0.5), (x + (spread if x < 0.45 else -spread), 1.0), c.colour, max(1, int(0.05 * c.width)))
        c.line((x + (spread if x < 0.45 else -spread), 0.95), (x + (spread if x < 0.45 else -spread), 1.0), DARK,
               max(1, int(0.05 * c.width)))
    c.ellipse(0.45, 0.42, 0.33, 0.16, c.colour)
    c.poly([(0.66, 0.3), (0.78, 0.08), (0.88, 0.1), (0.76, 0.42)], c.colour)
    c.ellipse(0.88, 0.12, 0.1, 0.07, c.colour, angle=30)
    c.line((0.7, 0.28), (0.8, 0.06), dark, c.size(0.04))
    c.line((0.12, 0.36), (0.03, 0.7), dark, c.size(0.05))


def _draw_bird(c: _ObjectCanvas, obj: SceneObject) -> None:
    if obj.pose == "flying":
        c.poly([(0.0, 0.0), (0.5, 0.55), (1.0, 0.0), (0.5, 1.0)], c.colour)
        return
    c.ellipse(0.45, 0.6, 0.35, 0.35, c.colour)
    c.circle(0.78, 0.3, c.size(0.25), c.colour)
    c.poly([(0.9, 0.25), (1.0, 0.35), (0.9, 0.42)], (40, 160, 230))


# ---------------------------------------------------------------------------------------------- vehicles
def _draw_bike(c: _ObjectCanvas, obj: SceneObject) -> None:
    radius = int(min(0.21 * c.width, 0.45 * c.height))
    fy = 1 - (radius + 1) / max(1, c.height - 1)
    back, front = (radius + 1) / max(1, c.width - 1), 1 - (radius + 1) / max(1, c.width - 1)
    thickness = max(1, radius // 5)
    c.circle(back, fy, radius, DARK, thickness)
    c.circle(front, fy, radius, DARK, thickness)
    frame = max(1, radius // 4)
    seat, handle, pedal = (0.38, 0.22), (0.78, 0.1), (0.48, fy)
    for a, b in ((back, fy), seat), (seat, pedal), (pedal, (back, fy)), (seat, (0.74, 0.35)), ((0.74, 0.35), pedal), \
            ((front, fy), handle):
        c.line(a, b, c.colour, frame)
    c.rect(0.3, 0.17, 0.46, 0.25, DARK)
    c.line((0.72, 0.08), (0.86, 0.08), DARK, frame)


def _draw_car(c: _ObjectCanvas, obj: SceneObject) -> None:
    glass = _jitter(c.rng, (230, 200, 160), 10)
    c.poly([(0.2, 0.42), (0.32, 0.02), (0.7, 0.02), (0.85, 0.42)], c.colour)
    c.poly([(0.27, 0.4), (0.36, 0.1), (0.49, 0.1), (0.49, 0.4)], glass)
    c.poly([(0.53, 0.4), (0.53, 0.1), (0.67, 0.1), (0.78, 0.4)], glass)
    c.rect(0.0, 0.4, 1.0, 0.82, c.colour)
    c.rect(0.94, 0.5, 1.0, 0.6, (80, 220, 240))
    radius = c.size(0.18)
    c.circle(0.22, 1 - radius / max(1, c.height - 1), radius, DARK)
    c.circle(0.78, 1 - radius / max(1, c.height - 1), radius, DARK)


# --------------------------------------------------------------------------------------------- furniture
def _draw_chair(c: _ObjectCanvas, obj: SceneObject) -> None:
    legs = tuple(int(v * 0.7) for v in c.colour)
    c.rect(0.05, 0.56, 0.15, 1.0, legs)
    c.rect(0.85, 0.56, 0.95, 1.0, legs)
    c.rect(0.0, 0.0, 0.18, 0.6, c.colour, c.texture)
    c.rect(0.0, 0.5, 1.0, 0.6, c.colour, c.texture)


def _draw_bench(c: _ObjectCanvas, obj: SceneObject) -> None:
    legs = tuple(int(v * 0.6) for v in c.colour)
    for x in (0.06, 0.88):
        c.rect(x, 0.0, x + 0.06, 1.0, legs)
    for y in (0.05, 0.25):
        c.rect(0.0, y, 1.0, y + 0.12, c.colour, c.texture)
    c.rect(0.0, 0.45, 1.0, 0.56, c.colour, c.texture)


def _draw_table(c: _ObjectCanvas, obj: SceneObject) -> None:
    legs = tuple(int(v * 0.7) for v in c.colour)
    c.rect(0.07, 0.1, 0.14, 1.0, legs)
    c.rect(0.86, 0.1, 0.93, 1.0, legs)
    c.rect(0.0, 0.0, 1.0, 0.16, c.colour, c.texture)


# -------------------------------------------------------------------------------------------- small items
def _draw_cup(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.ellipse(0.78, 0.45, 0.2, 0.22, c.colour, thickness=max(1, c.width // 8))
    c.poly([(0.05, 0.05), (0.75, 0.05), (0.65, 1.0), (0.15, 1.0)], c.colour, c.texture)


def _draw_plate(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.ellipse(0.5, 0.5, 0.5, 0.5, tuple(int(v * 0.8) for v in c.colour))
    c.ellipse(0.5, 0.45, 0.33, 0.3, c.colour)


def _draw_bottle(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.rect(0.05, 0.38, 0.95, 1.0, c.colour)
    c.rect(0.3, 0.08, 0.7, 0.4, c.colour)
    c.rect(0.25, 0.0, 0.75, 0.1, DARK)
    c.rect(0.1, 0.55, 0.9, 0.75, (235, 235, 235))


def _draw_bag(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.ellipse(0.5, 0.3, 0.3, 0.28, tuple(int(v * 0.6) for v in c.colour), thickness=max(1, c.width // 10))
    c.rect(0.0, 0.3, 1.0, 1.0, c.colour, c.texture)


def _draw_hat(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.ellipse(0.5, 0.85, 0.5, 0.15, c.colour)
    c.rect(0.25, 0.0, 0.75, 0.85, c.colour, c.texture)


# ------------------------------------------------------------------------------------------------- scene
def _draw_building(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.rect(0.0, 0.0, 1.0, 1.0, c.colour, c.texture)
    c.rect(0.0, 0.0, 1.0, 0.04, tuple(int(v * 0.55) for v in c.colour))


def _draw_window(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.rect(0.0, 0.0, 1.0, 1.0, (225, 225, 225))
    c.rect(0.12, 0.1, 0.88, 0.9, c.colour)
    c.line((0.5, 0.1), (0.5, 0.9), (225, 225, 225), c.size(0.06))
    c.line((0.12, 0.5), (0.88, 0.5), (225, 225, 225), c.size(0.06))


def _draw_sign(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.rect(0.0, 0.0, 1.0, 1.0, (240, 240, 240))
    c.rect(0.06, 0.12, 0.94, 0.88, c.colour)
    for y in (0.35, 0.62):
        c.line((0.15, y), (0.15 + c.rng.uniform(0.5, 0.7), y), (240, 240, 240), c.size(0.1))


def _draw_tree(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.rect(0.42, 0.5, 0.58, 1.0, _jitter(c.rng, (30, 60, 100)))
    for _ in range(6):
        fx, fy = c.rng.uniform(0.3, 0.7), c.rng.uniform(0.22, 0.45)
        c.ellipse(fx, fy, c.rng.uniform(0.22, 0.3), c.rng.uniform(0.14, 0.2), _jitter(c.rng, c.colour, 30), "leafy")


def _draw_grass(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.rect(0.0, 0.0, 1.0, 1.0, c.colour, "blades")


def _draw_road(c: _ObjectCanvas, obj: SceneObject) -> None:
    c.rect(0.0, 0.0, 1.0, 1.0, c.colour)
    line = max(1, c.height // 25)
    c.line((0.0, 0.05), (1.0, 0.05), (220, 220, 220), line)
    for start in np.arange(0.02, 1.0, 0.16):
        c.line((start, 0.55), (start + 0.08, 0.55), (60, 220, 240), line)


DRAWERS: dict[str, Callable[[_ObjectCanvas, SceneObject], None]] = {
    "man": _draw_person, "woman": _draw_person, "child": _draw_person, "dog": _draw_dog, "horse": _draw_horse,
    "bird": _draw_bird, "bike": _draw_bike, "car": _draw_car, "chair": _draw_chair, "bench": _draw_bench,
    "table": _draw_table, "cup": _draw_cup, "plate": _draw_plate, "bottle": _draw_bottle, "bag": _draw_bag,
    "hat": _draw_hat, "building": _draw_building, "window": _draw_window, "sign": _draw_sign, "tree": _draw_tree,
    "grass": _draw_grass, "road": _draw_road,
}


def _background(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Sky gradient above the horizon, floor below. -> (H, W, 3) float32 BGR."""
    rows = np.arange(scene.height, dtype=np.float32)[:, None]
    sky_top = np.array(_jitter(rng, (235, 190, 150), 20), np.float32)
    sky_bottom = np.array(_jitter(rng, (245, 235, 225), 10), np.float32)
    floor = np.array(_jitter(rng, (150, 175, 190), 25), np.float32)
    t = np.clip(rows / max(scene.horizon, 1.0), 0, 1)
    column = np.where(rows < scene.horizon, sky_top * (1 - t) + sky_bottom * t,
                      floor * (0.85 + 0.15 * (rows - scene.horizon) / max(1.0, scene.height - scene.horizon)))
    return np.broadcast_to(column[:, None, :], (scene.height, scene.width, 3)).copy()


def render_scene(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Draw ``scene`` far to near. -> (H, W, 3) uint8 BGR image (OpenCV channel order)."""
    image = _background(scene, rng).astype(np.uint8)
    for obj in sorted(scene.objects, key=lambda o: o.depth):
        canvas = _ObjectCanvas(image, obj, rng)
        DRAWERS[obj.name](canvas, obj)
        canvas.finish()
    noise = rng.integers(-PIXEL_NOISE, PIXEL_NOISE + 1, image.shape, dtype=np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of a (H, W, 3) uint8 BGR image (deterministic for equal input)."""
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG image")
    return buffer.tobytes()

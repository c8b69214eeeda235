"""SynthVG scene sampling: plausible layouts of objects with boxes, depth order, pose and colour.

A scene is a sky above a horizon, a floor below it (optionally covered by a grass or road region), maybe
buildings with windows and signs and trees in the back, and a few foreground *motifs*: people walking, riders
on horses and bikes, sitters on chairs and benches, tables with tableware, cars, dogs, horses, birds. Objects
further away (bottom closer to the horizon) are smaller and drawn first, so nearer objects occlude them.
The layout only places objects; which relations hold is decided afterwards from the geometry
(``relations.true_relations``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .vocabulary import MATERIAL_OF_CLASS, POSES

# Foreground motifs and their sampling weights; these set how often each relation is true and thereby
# shape the long tail of the predicate counts.
MOTIF_WEIGHTS: dict[str, float] = {
    "walker": 0.25, "group": 0.11, "table": 0.18, "sitter": 0.09, "rider": 0.07, "car": 0.10,
    "dog": 0.07, "horse": 0.03, "bike": 0.03, "bird": 0.07,
}
MOTIFS_PER_IMAGE = ((1, 2, 3, 4, 5), (0.15, 0.3, 0.3, 0.15, 0.1))
BUILDING_PROBABILITY = 0.45
TREE_PROBABILITY = 0.4
GROUND_PROBABILITIES = {"grass": 0.4, "road": 0.3, "floor": 0.3}
HAT_PROBABILITY = 0.3
HELD_ITEM_PROBABILITY = 0.1
BAG_PROBABILITY = 0.12

# Colour names (COLOURS_BGR keys) and textures each class is drawn with; None = plain.
CLASS_PALETTES: dict[str, tuple[str, ...]] = {
    "man": ("blue", "red", "green", "grey", "black"), "woman": ("pink", "purple", "red", "yellow", "white"),
    "child": ("orange", "yellow", "green", "blue"), "dog": ("brown", "black", "white"),
    "horse": ("brown", "black", "white"), "bird": ("black", "blue", "red", "yellow"),
    "bike": ("red", "blue", "black", "green"), "car": ("red", "blue", "white", "black", "grey", "yellow"),
    "chair": ("brown", "red", "white"), "bench": ("brown", "green", "grey"), "table": ("brown", "white"),
    "cup": ("white", "red", "blue", "yellow"), "plate": ("white", "yellow", "blue"), "bottle": ("green", "brown"),
    "bag": ("brown", "black", "red", "purple"), "hat": ("black", "red", "brown", "blue"),
    "building": ("grey", "brown", "red", "white"), "window": ("blue", "grey"), "sign": ("red", "blue", "green"),
    "tree": ("green",), "grass": ("green",), "road": ("grey", "black"),
}
CLASS_TEXTURES: dict[str, tuple[str | None, ...]] = {
    "man": (None, "striped", "checkered"), "woman": (None, "dotted", "striped"),
    "child": (None, "striped", "dotted"), "chair": (None, "wooden"), "bench": (None, "wooden"),
    "table": (None, "wooden"), "cup": (None, "dotted"), "bag": (None, "checkered"), "hat": (None, "striped"),
    "building": (None, "brick"), "tree": ("leafy",),
}
# Person heights relative to the person unit at that depth, and box aspect (w / h) per pose.
PERSON_HEIGHT = {"man": 1.0, "woman": 0.94, "child": 0.64}
PERSON_POSE_SHAPE = {"standing": (1.0, 0.36), "walking": (0.98, 0.5), "sitting": (0.78, 0.6), "riding": (0.8, 0.5)}
DOG_POSE_SHAPE = {"standing": (0.4, 1.45), "walking": (0.4, 1.5), "sitting": (0.45, 0.85), "lying": (0.22, 2.9)}
# (height, width) in person units for rigid objects.
OBJECT_SHAPE = {
    "horse": (1.05, 1.25), "bike": (0.55, 0.85), "car": (0.62, 1.6), "chair": (0.72, 0.42),
    "bench": (0.55, 1.3), "table": (0.5, 1.1), "cup": (0.15, 0.12), "plate": (0.09, 0.28),
    "bottle": (0.3, 0.1), "bag": (0.25, 0.22), "hat": (0.13, 0.26),
}
# Where a rider's / sitter's contact point (hip) sits on the supporter, as a fraction of its box height.
SEAT_HEIGHT = {"horse": 0.38, "bike": 0.22, "chair": 0.55, "bench": 0.5}
MIN_BOX_SIDE = 3
# Carried or placed items, exempt from the overlap check against later motifs (they are meant to overlap).
SMALL_ITEMS = frozenset({"hat", "cup", "plate", "bottle", "bag"})


@dataclass
class SceneObject:
    """One object: class name, box (x1, y1, x2, y2) in pixels, drawing depth (larger = nearer, drawn later),
    pose ("" for rigid objects), facing (+1 right / -1 left), colour name and texture (None = plain)."""

    name: str
    box: np.ndarray
    depth: float
    colour: str
    texture: str | None = None
    pose: str = ""
    facing: int = 1

    def attributes(self) -> list[str]:
        """Attribute names in a fixed order: colour, texture, material, pose."""
        names = [self.colour]
        if self.texture is not None:
            names.append(self.texture)
        if self.name in MATERIAL_OF_CLASS:
            names.append(MATERIAL_OF_CLASS[self.name])
        if self.pose in POSES:
            names.append(self.pose)
        return names


@dataclass
class Scene:
    """An image's layout: size, horizon row, ground kind ("grass", "road" or "floor") and its objects."""

    width: int
    height: int
    horizon: float
    ground: str
    objects: list[SceneObject] = field(default_factory=list)


class _Layout:
    """Builds one scene; ``rng`` drives every choice."""

    def __init__(self, rng: np.random.Generator, width: int, height: int) -> None:
        self.rng, self.width, self.height = rng, width, height
        self.horizon = height * rng.uniform(0.35, 0.55)
        self.ground = str(rng.choice(list(GROUND_PROBABILITIES), p=list(GROUND_PROBABILITIES.values())))
        self.objects: list[SceneObject] = []
        self.foreground_boxes: list[np.ndarray] = []

    # ----------------------------------------------------------------------------------------------- helpers
    def person_unit(self, bottom: float) -> float:
        """Height in pixels of a standing man whose feet are at row ``bottom`` (perspective)."""
        depth_fraction = np.clip((bottom - self.horizon) / (self.height - self.horizon), 0.0, 1.0)
        return 0.55 * self.height * (0.4 + 0.6 * depth_fraction)

    def make(self, name: str, box: tuple[float, float, float, float], depth: float, pose: str = "",
             facing: int = 1) -> SceneObject:
        textures = CLASS_TEXTURES.get(name, (None,))
        return SceneObject(name=name, box=np.array(box, dtype=np.float64), depth=depth,
                           colour=str(self.rng.choice(CLASS_PALETTES[name])),
                           texture=textures[self.rng.integers(len(textures))], pose=pose, facing=facing)

    def random_bottom(self) -> float:
        return self.rng.uniform(self.horizon + 0.15 * (self.height - self.horizon), self.height - 1)

    def fits(self, objects: list[SceneObject]) -> bool:
        """Inside the image, and neither hiding nor hidden by more than 60 % by an earlier foreground object."""
        for obj in objects:
            x1, y1, x2, y2 = obj.box
            if x1 < 0 or y1 < 0 or x2 > self.width or y2 > self.height:
                return False
            if x2 - x1 < MIN_BOX_SIDE or y2 - y1 < MIN_BOX_SIDE:
                return False
            for other in self.foreground_boxes:
                inter_w = min(x2, other[2]) - max(x1, other[0])
                inter_h = min(y2, other[3]) - max(y1, other[1])
                if inter_w > 0 and inter_h > 0:
                    smaller = min((x2 - x1) * (y2 - y1), (other[2] - other[0]) * (other[3] - other[1]))
                    if inter_w * inter_h > 0.6 * smaller:
                        return False
        return True

    def add_motif(self, build, attempts: int = 4) -> None:
        for _ in range(attempts):
            objects = build()
            if objects and self.fits(objects):
                self.objects.extend(objects)
                self.foreground_boxes.extend(obj.box for obj in objects if obj.name not in SMALL_ITEMS)
                return

    # ---------------------------------------------------------------------------------------- background
    def add_ground(self) -> None:
        if self.ground == "floor":
            return
        if self.rng.random() < 0.6:
            x1, x2 = 0.0, float(self.width)
        else:
            span = self.rng.uniform(0.5, 0.9) * self.width
            x1 = self.rng.uniform(0, self.width - span)
            x2 = x1 + span
        self.objects.append(self.make(self.ground, (x1, self.horizon, x2, self.height), depth=0.0))

    def add_building(self) -> None:
        width = self.rng.uniform(0.3, 0.6) * self.width
        x1 = self.rng.uniform(0, self.width - width)
        top = self.rng.uniform(0.03 * self.height, max(0.04 * self.height, self.horizon - 0.2 * self.height))
        bottom = self.horizon + self.rng.uniform(0, 0.03) * self.height
        building = self.make("building", (x1, top, x1 + width, bottom), depth=0.5)
        self.objects.append(building)
        height = bottom - top
        rows, cols = self.rng.integers(1, 4), self.rng.integers(1, 4)
        cell_w, cell_h = 0.76 * width / cols, 0.62 * height / rows
        for row in range(rows):
            for col in range(cols):
                if self.rng.random() < 0.25:
                    continue
                cx = x1 + 0.12 * width + (col + 0.5) * cell_w
                cy = top + 0.08 * height + (row + 0.5) * cell_h
                w, h = 0.55 * cell_w, 0.55 * cell_h
                self.objects.append(self.make("window", (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), depth=0.6))
        if self.rng.random() < 0.35:
            cx = x1 + width * self.rng.uniform(0.3, 0.7)
            w, h = 0.4 * width, 0.12 * height
            y1 = top + 0.74 * height
            self.objects.append(self.make("sign", (cx - w / 2, y1, cx + w / 2, y1 + h), depth=0.6))

    def add_tree(self) -> None:
        bottom = self.horizon + self.rng.uniform(0.02, 0.3) * (self.height - self.horizon)
        height = min(1.9 * self.person_unit(bottom), bottom - 1)
        width = 0.6 * height
        cx = self.rng.uniform(width / 2, self.width - width / 2)
        tree = self.make("tree", (cx - width / 2, bottom - height, cx + width / 2, bottom), depth=bottom)
        if not self.fits([tree]):
            return
        self.objects.append(tree)
        if self.rng.random() < 0.3:
            size = 0.12 * height
            bx = cx + self.rng.uniform(-0.25, 0.25) * width
            by = bottom - height * self.rng.uniform(0.55, 0.85)
            self.objects.append(self.make("bird", (bx - size, by - size / 2, bx + size, by + size / 2),
                                          depth=bottom + 0.001, pose="perched"))

    # ------------------------------------------------------------------------------------------- people
    def person(self, name: str, pose: str, cx: float, bottom: float, unit: float, depth: float,
               facing: int, accessories: bool = True) -> list[SceneObject]:
        """A person with feet (or, sitting/riding, hip-derived box) ending at ``bottom``, plus a hat, a held
        cup/bottle and a bag by chance."""
        scale, aspect = PERSON_POSE_SHAPE[pose]
        height = PERSON_HEIGHT[name] * scale * unit
        width = aspect * height
        body = self.make(name, (cx - width / 2, bottom - height, cx + width / 2, bottom), depth, pose, facing)
        objects = [body]
        standing_height = PERSON_HEIGHT[name] * unit
        head_radius = (0.13 if name == "child" else 0.1) * standing_height
        head_x = cx - facing * 0.2 * width if pose == "sitting" else cx
        if self.rng.random() < HAT_PROBABILITY:
            w, h = 2.6 * head_radius, 1.3 * head_radius
            hat_bottom = body.box[1] + 0.6 * head_radius
            objects.append(self.make("hat", (head_x - w / 2, hat_bottom - h, head_x + w / 2, hat_bottom),
                                     depth + 0.002))
        if accessories and pose in ("standing", "walking"):
            hand_y = body.box[1] + 0.55 * height
            if self.rng.random() < HELD_ITEM_PROBABILITY:
                item = "cup" if self.rng.random() < 0.5 else "bottle"
                objects.append(self.item(item, body.box[2] if facing > 0 else body.box[0], hand_y, unit,
                                         depth + 0.003))
            if self.rng.random() < BAG_PROBABILITY:
                objects.append(self.item("bag", body.box[0] if facing > 0 else body.box[2], hand_y, unit,
                                         depth + 0.004))
        return objects

    def item(self, name: str, cx: float, top: float, unit: float, depth: float) -> SceneObject:
        """A small object hanging from a hand at (cx, top)."""
        h, w = (side * unit for side in OBJECT_SHAPE[name])
        return self.make(name, (cx - w / 2, top - 0.15 * h, cx + w / 2, top + 0.85 * h), depth)

    def rigid(self, name: str, cx: float, bottom: float, unit: float, depth: float, facing: int = 1,
              pose: str = "") -> SceneObject:
        h, w = (side * unit for side in OBJECT_SHAPE[name])
        return self.make(name, (cx - w / 2, bottom - h, cx + w / 2, bottom), depth, pose, facing)

    def dog(self, pose: str, cx: float, bottom: float, unit: float, depth: float, facing: int) -> SceneObject:
        scale, aspect = DOG_POSE_SHAPE[pose]
        h = scale * unit
        return self.make("dog", (cx - aspect * h / 2, bottom - h, cx + aspect * h / 2, bottom), depth, pose, facing)

    def person_name(self) -> str:
        return str(self.rng.choice(("man", "woman", "child"), p=(0.45, 0.4, 0.15)))

    def facing(self) -> int:
        return 1 if self.rng.random() < 0.5 else -1

    # -------------------------------------------------------------------------------------------- motifs
    def motif_walker(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        unit = self.person_unit(bottom)
        pose = "standing" if self.rng.random() < 0.55 else "walking"
        return self.person(self.person_name(), pose, self.rng.uniform(0, self.width), bottom, unit, bottom,
                           self.facing())

    def motif_group(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        unit = self.person_unit(bottom)
        cx = self.rng.uniform(0, self.width)
        objects: list[SceneObject] = []
        for _ in range(self.rng.integers(2, 4)):
            own_bottom = min(self.height - 1, bottom + self.rng.uniform(-0.04, 0.04) * self.height)
            pose = "standing" if self.rng.random() < 0.6 else "walking"
            objects += self.person(self.person_name(), pose, cx, own_bottom, unit, own_bottom, self.facing())
            cx += self.rng.uniform(0.25, 0.6) * unit * (1 if self.rng.random() < 0.8 else -1)
        return objects

    def motif_rider(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        unit = self.person_unit(bottom)
        facing = self.facing()
        mount_name = "horse" if self.rng.random() < 0.5 else "bike"
        mount = self.rigid(mount_name, self.rng.uniform(0, self.width), bottom, unit, bottom, facing,
                           pose="walking" if mount_name == "horse" else "")
        x1, y1, x2, y2 = mount.box
        hip_y = y1 + SEAT_HEIGHT[mount.name] * (y2 - y1)
        rider_name = self.person_name()
        rider_height = PERSON_HEIGHT[rider_name] * PERSON_POSE_SHAPE["riding"][0] * unit
        rider_bottom = hip_y + 0.45 * rider_height
        seat_x = (x1 + x2) / 2 - facing * 0.05 * (x2 - x1)
        return [mount] + self.person(rider_name, "riding", seat_x, rider_bottom, unit, bottom + 0.001, facing,
                                     accessories=False)

    def sitters_on(self, seat: SceneObject, count: int, unit: float) -> list[SceneObject]:
        x1, y1, x2, y2 = seat.box
        hip_y = y1 + SEAT_HEIGHT[seat.name] * (y2 - y1)
        objects = []
        for index in range(count):
            cx = x1 + (x2 - x1) * (index + 0.5) / count
            if self.rng.random() < 0.2:
                pose = "lying" if seat.name == "bench" and self.rng.random() < 0.6 else "sitting"
                objects.append(self.dog(pose, cx, hip_y, unit, seat.depth + 0.001 * (index + 1), seat.facing))
                continue
            name = self.person_name()
            height = PERSON_HEIGHT[name] * PERSON_POSE_SHAPE["sitting"][0] * unit
            objects += self.person(name, "sitting", cx, hip_y + 0.4 * height, unit, seat.depth + 0.001 * (index + 1),
                                   seat.facing)
        return objects

    def motif_sitter(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        unit = self.person_unit(bottom)
        name = "bench" if self.rng.random() < 0.55 else "chair"
        seat = self.rigid(name, self.rng.uniform(0, self.width), bottom, unit, bottom, self.facing())
        if self.rng.random() < 0.2:
            count = 0
        else:
            count = int(self.rng.integers(1, 3)) if name == "bench" else 1
        objects = [seat] + self.sitters_on(seat, count, unit)
        if self.rng.random() < 0.15:
            x1, y1, x2, y2 = seat.box
            objects.append(self.rigid("bag", self.rng.uniform(x1 + 0.2 * (x2 - x1), x2 - 0.2 * (x2 - x1)), y2,
                                      unit * 0.8, bottom + 0.0005))
        return objects

    def motif_table(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        unit = self.person_unit(bottom)
        table = self.rigid("table", self.rng.uniform(0, self.width), bottom, unit, bottom)
        x1, y1, x2, y2 = table.box
        objects = [table]
        count = int(self.rng.integers(1, 5))
        surface = y1 + 0.08 * (y2 - y1)
        for index in range(count):
            name = str(self.rng.choice(("cup", "plate", "bottle", "bag", "hat"), p=(0.36, 0.36, 0.2, 0.04, 0.04)))
            cx = x1 + (x2 - x1) * (index + self.rng.uniform(0.3, 0.7)) / count
            objects.append(self.rigid(name, cx, surface, unit, bottom + 0.001 * (index + 1)))
        if self.rng.random() < 0.4:
            side = self.facing()
            chair = self.rigid("chair", (x2 + 0.25 * unit) if side > 0 else (x1 - 0.25 * unit),
                               bottom + 0.01 * self.height, unit, bottom + 0.01 * self.height, -side)
            objects.append(chair)
            if self.rng.random() < 0.6:
                objects += self.sitters_on(chair, 1, unit)
        if self.rng.random() < 0.12:
            objects.append(self.dog("lying" if self.rng.random() < 0.5 else "standing", (x1 + x2) / 2,
                                    y2, unit * 0.8, bottom + 0.0005, self.facing()))
        return objects

    def motif_car(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        unit = self.person_unit(bottom)
        return [self.rigid("car", self.rng.uniform(0, self.width), bottom, unit, bottom, self.facing())]

    def motif_dog(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        pose = str(self.rng.choice(("standing", "walking", "sitting", "lying"), p=(0.3, 0.3, 0.15, 0.25)))
        return [self.dog(pose, self.rng.uniform(0, self.width), bottom, self.person_unit(bottom), bottom,
                         self.facing())]

    def motif_horse(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        pose = "standing" if self.rng.random() < 0.5 else "walking"
        return [self.rigid("horse", self.rng.uniform(0, self.width), bottom, self.person_unit(bottom), bottom,
                           self.facing(), pose=pose)]

    def motif_bike(self) -> list[SceneObject]:
        bottom = self.random_bottom()
        return [self.rigid("bike", self.rng.uniform(0, self.width), bottom, self.person_unit(bottom), bottom,
                           self.facing())]

    def motif_bird(self) -> list[SceneObject]:
        size = self.rng.uniform(0.035, 0.06) * self.height
        cx = self.rng.uniform(size, self.width - size)
        cy = self.rng.uniform(0.05 * self.height, max(0.06 * self.height, self.horizon - 0.05 * self.height))
        return [self.make("bird", (cx - size, cy - size / 2, cx + size, cy + size / 2), depth=1000.0,
                          pose="flying", facing=self.facing())]

    # ------------------------------------------------------------------------------------------- scene
    def build(self) -> Scene:
        self.add_ground()
        if self.rng.random() < BUILDING_PROBABILITY:
            self.add_building()
        if self.ground != "road" and self.rng.random() < TREE_PROBABILITY:
            for _ in range(self.rng.integers(1, 3)):
                self.add_tree()
        motif_names = list(MOTIF_WEIGHTS)
        weights = np.array([MOTIF_WEIGHTS[name] for name in motif_names])
        if self.ground == "grass":
            weights[motif_names.index("car")] *= 0.3
        count = int(self.rng.choice(MOTIFS_PER_IMAGE[0], p=MOTIFS_PER_IMAGE[1]))
        for name in self.rng.choice(motif_names, size=count, p=weights / weights.sum()):
            self.add_motif(getattr(self, f"motif_{name}"))
        return Scene(self.width, self.height, self.horizon, self.ground, self.objects)


def sample_image_size(rng: np.random.Generator, image_size: int) -> tuple[int, int]:
    """(width, height): the longer side in [0.83, 1.33] x image_size, aspect 0.66..1, portrait one time in three."""
    longer = int(round(image_size * rng.uniform(0.83, 1.33)))
    shorter = int(round(longer * rng.uniform(0.66, 1.0)))
    return (shorter, longer) if rng.random() < 1 / 3 else (longer, shorter)


def sample_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """Sample a scene layout of the given size. Boxes are rounded to whole pixels (x2, y2 exclusive)."""
    scene = _Layout(rng, width, height).build()
    for obj in scene.objects:
        x1, y1, x2, y2 = np.round(obj.box)
        x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
        obj.box = np.array([x1, y1, min(max(x2, x1 + 1), width), min(max(y2, y1 + 1), height)])
    return scene


def empty_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """A scene with background only (sky and floor), for images whose objects are all unannotated."""
    return Scene(width, height, height * rng.uniform(0.35, 0.55), "floor", [])


__all__ = ["CLASS_PALETTES", "MOTIF_WEIGHTS", "Scene", "SceneObject", "empty_scene",
           "sample_image_size", "sample_scene"]

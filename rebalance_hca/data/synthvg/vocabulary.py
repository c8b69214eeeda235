"""SynthVG vocabulary: object classes, predicates (informative ones with their general form), attributes.

Ids follow VG150's convention: 1..K in alphabetical order of the names (0 is ``__background__`` in the loader).
"""
from __future__ import annotations

OBJECT_CLASSES: tuple[str, ...] = (
    "bag", "bench", "bike", "bird", "bottle", "building", "car", "chair", "child", "cup", "dog", "grass",
    "hat", "horse", "man", "plate", "road", "sign", "table", "tree", "window", "woman",
)
PERSON_CLASSES = frozenset({"man", "woman", "child"})
ANIMAL_CLASSES = frozenset({"dog", "horse", "bird"})
RIDABLE_CLASSES = frozenset({"horse", "bike"})
SEAT_CLASSES = frozenset({"chair", "bench"})
FURNITURE_CLASSES = frozenset({"chair", "bench", "table"})
TABLEWARE_CLASSES = frozenset({"cup", "plate", "bottle"})
GROUND_CLASSES = frozenset({"grass", "road"})
BUILDING_PART_CLASSES = frozenset({"window", "sign"})

# Informative predicate -> the general predicate an annotator writes instead (VG's annotation bias).
GENERAL_OF_INFORMATIVE: dict[str, str] = {
    "riding": "on",
    "sitting on": "on",
    "standing on": "on",
    "walking on": "on",
    "laying on": "on",
    "parked on": "on",
    "growing on": "on",
    "mounted on": "on",
    "wearing": "has",
    "holding": "has",
    "carrying": "has",
    "part of": "of",
}
GENERAL_PREDICATES: tuple[str, ...] = ("above", "behind", "has", "in", "in front of", "near", "of", "on", "under")
PREDICATES: tuple[str, ...] = tuple(sorted(set(GENERAL_PREDICATES) | set(GENERAL_OF_INFORMATIVE)))
INFORMATIVE_PREDICATES: tuple[str, ...] = tuple(sorted(GENERAL_OF_INFORMATIVE))

# The single true predicate an annotator names for a pair is the first true one in this order:
# class-conditioned informative predicates, then contact/part relations, then pure geometry.
PREDICATE_PRIORITY: tuple[str, ...] = INFORMATIVE_PREDICATES + (
    "on", "has", "of", "in", "under", "above", "in front of", "behind", "near",
)

# Named colours (BGR, as OpenCV draws) and the attributes an object can carry.
COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "black": (35, 35, 35),
    "blue": (200, 90, 40),
    "brown": (40, 75, 130),
    "green": (60, 160, 50),
    "grey": (128, 128, 128),
    "orange": (30, 140, 245),
    "pink": (190, 150, 245),
    "purple": (150, 50, 130),
    "red": (40, 40, 210),
    "white": (235, 235, 235),
    "yellow": (40, 215, 235),
}
TEXTURES: tuple[str, ...] = ("checkered", "dotted", "striped", "wooden", "brick", "leafy")
MATERIAL_OF_CLASS: dict[str, str] = {"window": "glass", "bottle": "glass", "bike": "metal", "car": "metal"}
POSES: tuple[str, ...] = ("standing", "walking", "sitting", "lying")
ATTRIBUTES: tuple[str, ...] = tuple(sorted(set(COLOURS_BGR) | set(TEXTURES) | set(MATERIAL_OF_CLASS.values())
                                           | set(POSES)))


def name_to_id(names: tuple[str, ...]) -> dict[str, int]:
    """VG-style ids: 1..len(names) in alphabetical order of the names."""
    return {name: index + 1 for index, name in enumerate(sorted(names))}


CLASS_TO_ID = name_to_id(OBJECT_CLASSES)
PREDICATE_TO_ID = name_to_id(PREDICATES)
ATTRIBUTE_TO_ID = name_to_id(ATTRIBUTES)

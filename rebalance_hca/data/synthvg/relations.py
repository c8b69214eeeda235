"""Which predicates are true for each ordered object pair of a scene, from geometry, depth order, pose and class.

Every rule reads only what the image shows: boxes, which object is drawn over which (depth), the pose a
figure is drawn in, and the classes. Contact relations come first; pure geometry (above / under / in front
of / behind / near) is true only between objects without a contact relation.

* on: the subject's contact point (feet; the hip of a sitter or rider) lies in the supporter's support band
  (table top, seat, saddle, or anywhere on a grass/road region), horizontally within it, and the subject is
  drawn over it. Objects resting on furniture or a mount do not also rest on the ground region.
  Informative forms: riding (person on horse/bike), sitting on (sitting person/dog on a seat or the ground),
  laying on (lying dog), standing on / walking on (standing / walking person, dog or horse on the ground),
  parked on (car, or bike with nobody on it, on the ground), growing on (tree on grass).
* part of (general: of): a window inside a building; mounted on (general: on): a sign inside a building;
  has: the building of such a window or sign.
* wearing (general: has): a hat whose bottom edge lies in the top quarter of a person, drawn over them.
* holding (cup/bottle) and carrying (bag) (general: has): an object at a person's hand height that
  overlaps the person, is drawn over them and rests on nothing.
* in: a bird inside a tree's crown.
* under / above: the subject lies entirely below the object, their boxes overlapping horizontally by half
  the narrower width and the gap at most the taller height, both at a similar depth (their ground rows
  differ by at most ``SAME_DEPTH_FRACTION`` of the image height) or the object flying; or a dog or small
  item stands on the floor beneath a table, chair or bench. above is the converse.
* in front of / behind: boxes overlap by at least ``OCCLUSION_MIN_OVERLAP`` of the smaller box and no
  relation above holds either way; the one drawn later is in front.
* near: boxes do not overlap, the gap is at most ``NEAR_MAX_GAP`` of the taller height, their vertical
  extents overlap and their depths are similar.

Ground regions, building parts and worn or held things take part in no geometric relation; buildings
only in front of / behind.
"""
from __future__ import annotations

import numpy as np

from .scene import Scene
from .vocabulary import (
    BUILDING_PART_CLASSES, FURNITURE_CLASSES, GROUND_CLASSES, PERSON_CLASSES, PREDICATE_PRIORITY, PREDICATES,
    RIDABLE_CLASSES, SEAT_CLASSES, TABLEWARE_CLASSES,
)

# Support band of each supporter class: the contact point must lie in y1 + [low, high] * height.
SUPPORT_BANDS: dict[str, tuple[float, float]] = {
    "table": (-0.02, 0.2), "chair": (0.4, 0.7), "bench": (0.35, 0.65), "horse": (0.25, 0.5),
    "bike": (0.1, 0.35), "grass": (0.0, 1.0), "road": (0.0, 1.0),
}
_ON_GROUND = PERSON_CLASSES | {"dog", "horse", "bike", "car", "bench", "chair", "table"}
SUPPORTED_CLASSES: dict[str, frozenset[str]] = {
    "table": TABLEWARE_CLASSES | {"bag", "hat"},
    "chair": PERSON_CLASSES | {"dog", "bag"},
    "bench": PERSON_CLASSES | {"dog", "bag"},
    "horse": PERSON_CLASSES,
    "bike": PERSON_CLASSES,
    "grass": _ON_GROUND | {"tree"},
    "road": _ON_GROUND,
}
# Contact point of a posed figure, as a fraction of its box height from the top (feet otherwise).
CONTACT_FRACTION = {"sitting": 0.6, "riding": 0.55}
OCCLUSION_MIN_OVERLAP = 0.15
NEAR_MAX_GAP = 0.3
SAME_DEPTH_FRACTION = 0.08
FITS_BENEATH_FURNITURE = frozenset({"dog", "bag", "cup", "plate", "bottle", "hat"})


def _support_predicate(subject: str, pose: str, supporter: str, supporter_carries_rider: bool) -> str:
    """The informative name of 'subject on supporter', or "on" when there is none."""
    if supporter in RIDABLE_CLASSES and subject in PERSON_CLASSES:
        return "riding"
    if supporter in SEAT_CLASSES | GROUND_CLASSES and pose == "sitting":
        return "sitting on"
    if supporter in SEAT_CLASSES | GROUND_CLASSES and pose == "lying":
        return "laying on"
    if supporter in GROUND_CLASSES:
        if pose == "standing":
            return "standing on"
        if pose == "walking":
            return "walking on"
        if subject == "car" or (subject == "bike" and not supporter_carries_rider):
            return "parked on"
        if subject == "tree" and supporter == "grass":
            return "growing on"
    return "on"


def true_relations(scene: Scene) -> dict[str, np.ndarray]:
    """Truth of every predicate for every ordered pair. -> {predicate name: (n, n) bool}, [subject, object]."""
    objects = scene.objects
    n = len(objects)
    names = np.array([obj.name for obj in objects], dtype=object)
    boxes = np.array([obj.box for obj in objects], dtype=np.float64).reshape(n, 4)
    depth = np.array([obj.depth for obj in objects], dtype=np.float64)
    x1, y1, x2, y2 = boxes.T
    width, height = x2 - x1, y2 - y1
    area = width * height
    cx = (x1 + x2) / 2
    contact = np.array([y1[i] + CONTACT_FRACTION.get(obj.pose, 1.0) * height[i] for i, obj in enumerate(objects)])
    inter_w = np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None])
    inter_h = np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None])
    inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
    covered = inter / area[:, None]  # fraction of the subject inside the object
    drawn_over = depth[:, None] > depth[None]
    h_inside = (cx[:, None] >= x1[None]) & (cx[:, None] <= x2[None])

    def is_in(classes) -> np.ndarray:
        return np.isin(names, list(classes))

    def pair(subject_classes, object_classes) -> np.ndarray:
        return is_in(subject_classes)[:, None] & is_in(object_classes)[None]

    attach = pair(BUILDING_PART_CLASSES, {"building"}) & (covered >= 0.95) & drawn_over
    hat_bottom_in_head = (y2[None] >= y1[:, None]) & (y2[None] <= y1[:, None] + 0.25 * height[:, None])
    wear = (pair(PERSON_CLASSES, {"hat"}) & hat_bottom_in_head & (cx[None] >= x1[:, None]) & (cx[None] <= x2[:, None])
            & drawn_over.T)
    crown_bottom = y1 + 0.65 * height
    crown_inter = np.clip(inter_w, 0, None) * np.clip(np.minimum(y2[:, None], crown_bottom[None])
                                                      - np.maximum(y1[:, None], y1[None]), 0, None)
    inside = pair({"bird"}, {"tree"}) & (crown_inter >= 0.9 * area[:, None]) & drawn_over

    supported = np.zeros((n, n), dtype=bool)
    band = np.full((n, 2), np.nan)
    for j, obj in enumerate(objects):
        if obj.name in SUPPORT_BANDS:
            supported[:, j] = is_in(SUPPORTED_CLASSES[obj.name])
            band[j] = y1[j] + np.array(SUPPORT_BANDS[obj.name]) * height[j]
    resting = (supported & (contact[:, None] >= band[None, :, 0]) & (contact[:, None] <= band[None, :, 1])
               & h_inside & drawn_over)
    on_ground_region = is_in(GROUND_CLASSES)[None]
    rest_object = resting & ~on_ground_region
    carried = is_in({"cup", "bottle", "bag"})
    item_depth_in_subject = ((y1 + y2) / 2)[None] - y1[:, None]  # object centre below the subject's top
    hold = (pair(PERSON_CLASSES, {"cup", "bottle", "bag"}) & carried[None] & ~rest_object.any(1)[None]
            & (item_depth_in_subject >= 0.35 * height[:, None]) & (item_depth_in_subject <= 0.8 * height[:, None])
            & (cx[None] >= (x1 - 0.3 * width)[:, None]) & (cx[None] <= (x2 + 0.3 * width)[:, None])
            & (inter > 0) & drawn_over.T)
    elsewhere = rest_object.any(1) | attach.any(1) | wear.any(0) | inside.any(1) | hold.any(0)
    rest_ground = resting & on_ground_region & ~elsewhere[:, None]
    rest = rest_object | rest_ground

    surface_bottom = np.where(np.isnan(band[:, 1]), y1, band[:, 1])
    beneath = (pair(FITS_BENEATH_FURNITURE, FURNITURE_CLASSES) & ~rest & h_inside
               & (y1[:, None] >= surface_bottom[None]) & (np.abs(y2[:, None] - y2[None]) <= 0.1 * height[None]))
    x_overlap = np.clip(inter_w, 0, None) >= 0.5 * np.minimum(width[:, None], width[None])
    gap_below = y1[:, None] - y2[None]
    # Depth (the row an object stands on) is visible through perspective; vertical and distance relations
    # hold between objects at a similar depth, or under something flying.
    similar_depth = np.abs(depth[:, None] - depth[None]) <= SAME_DEPTH_FRACTION * scene.height
    flying = np.array([obj.pose == "flying" for obj in objects], dtype=bool)
    below = (x_overlap & (gap_below >= 0) & (gap_below <= np.maximum(height[:, None], height[None]))
             & (similar_depth | flying[None]))
    under = (beneath | below) & ~np.eye(n, dtype=bool)

    contact_any = attach | wear | inside | rest | hold
    contact_any = contact_any | contact_any.T
    in_depth = ~(is_in(GROUND_CLASSES) | is_in(BUILDING_PART_CLASSES) | wear.any(0) | hold.any(0))
    free_standing = in_depth & ~is_in({"building"})
    under &= free_standing[:, None] & free_standing[None] & ~contact_any
    above = under.T
    contact_any |= under | above
    occluding = (in_depth[:, None] & in_depth[None] & ~contact_any & ~np.eye(n, dtype=bool)
                 & (inter >= OCCLUSION_MIN_OVERLAP * np.minimum(area[:, None], area[None])) & (inter > 0))
    gap = np.maximum(-inter_w, -inter_h)
    near = (free_standing[:, None] & free_standing[None] & ~contact_any & ~np.eye(n, dtype=bool) & similar_depth
            & (gap >= 0) & (gap <= NEAR_MAX_GAP * np.maximum(height[:, None], height[None])) & (inter_h > 0))

    truth = {name: np.zeros((n, n), dtype=bool) for name in PREDICATES}
    carries_someone = rest_object.any(0)
    for s, o in zip(*np.nonzero(rest)):
        truth[_support_predicate(names[s], objects[s].pose, names[o], bool(carries_someone[o]))][s, o] = True
    truth["on"] |= rest | (attach & is_in({"sign"})[:, None])
    truth["mounted on"] = attach & is_in({"sign"})[:, None]
    truth["part of"] = attach & is_in({"window"})[:, None]
    truth["of"] = truth["part of"].copy()
    truth["wearing"] = wear
    truth["holding"] = hold & is_in(TABLEWARE_CLASSES)[None]
    truth["carrying"] = hold & is_in({"bag"})[None]
    truth["has"] = wear | hold | attach.T
    truth["in"] = inside
    truth["under"], truth["above"] = under, above
    truth["in front of"] = occluding & drawn_over
    truth["behind"] = occluding & drawn_over.T
    truth["near"] = near
    return truth


def canonical_predicates(truth: dict[str, np.ndarray]) -> np.ndarray:
    """The most specific true predicate of each pair (first in PREDICATE_PRIORITY), as an index into
    PREDICATE_PRIORITY; -1 where nothing is true. -> (n, n) int64."""
    stacked = np.stack([truth[name] for name in PREDICATE_PRIORITY])
    first = np.argmax(stacked, axis=0)
    return np.where(stacked.any(0), first, -1)

"""VCTree's trees (docs/reference.md#vctree): one greedy multi-way tree per image grown from its pair
scores, its left-child / right-sibling binary form, and the depth-by-depth schedule the tree LSTMs run on.

SGB (``utils_vctree.py``) grows each image's tree with Python node objects, one attachment and one
score-matrix slice per step, then binarises it recursively. Here every image's tree grows in lockstep
(``grow_trees``: one step attaches one node in every image that still has nodes left, with tensor
operations over the batch), the binarisation is one sort (``binarize``), and the tree LSTMs visit the
nodes of all trees depth by depth (``TreeSchedule``), so the Python loops run over steps and depths,
not over nodes and images.

The rule, identical in training and testing: with s (n, n) the pair scores of an image, the root is the
first maximum of the row means of s (diagonal included); then, n - 1 times, the first maximum of
s[parent, child] over the placed parents (rows, in the order they were placed) x the remaining nodes
(columns, ascending) attaches that child as that parent's last child. The binary tree makes a node's
first child its left child and each later child the right child of its previous sibling.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MultiwayTrees:
    """B trees over padded node slots, L = max N_b.

    num_objects: N_b per image. root: (B,) int64 local index of each root (0 for an image without nodes).
    parent: (B, L) int64 local index of each node's parent, -1 at the root and at padding.
    rank: (B, L) int64 the step that attached each node (0 for the root), -1 at padding; siblings are
    ordered by it.
    """

    num_objects: list[int]
    root: Tensor
    parent: Tensor
    rank: Tensor


def pad_scores(scores: list[Tensor]) -> Tensor:
    """[(N_b, N_b)] -> (B, L, L) with L = max N_b, zeros outside each image's block."""
    size = max((len(image_scores) for image_scores in scores), default=0)
    padded = torch.zeros(len(scores), size, size, dtype=torch.float32)
    for index, image_scores in enumerate(scores):
        count = len(image_scores)
        padded[index, :count, :count] = image_scores
    return padded


def grow_trees(scores: list[Tensor]) -> MultiwayTrees:
    """The greedy trees of the module docstring, all images in lockstep.

    scores: per image (N_b, N_b) float pair scores s (CPU), entry (i, j) the score of j as a child of i.
    Ties go to the first maximum: the root with the smallest index; an attachment with the parent placed
    earliest, then the child with the smallest index. Raises ValueError if a score is not finite.
    """
    counts = torch.tensor([len(image_scores) for image_scores in scores], dtype=torch.int64)
    padded = pad_scores(scores)
    if not torch.isfinite(padded).all():
        raise ValueError("VCTree pair scores are not finite; cannot build the trees")
    num_images, size = padded.shape[:2]
    if size == 0:
        empty = torch.zeros(num_images, 0, dtype=torch.int64)
        return MultiwayTrees(counts.tolist(), torch.zeros(num_images, dtype=torch.int64), empty, empty)
    slots = torch.arange(size)
    valid = slots[None, :] < counts[:, None]
    node_scores = torch.full((num_images, size), float("-inf"))
    for index, image_scores in enumerate(scores):
        node_scores[index, :len(image_scores)] = image_scores.float().mean(dim=1)
    root = node_scores.argmax(dim=1)
    parent = torch.full((num_images, size), -1, dtype=torch.int64)
    rank = torch.full((num_images, size), -1, dtype=torch.int64)
    by_rank = torch.full((num_images, size), -1, dtype=torch.int64)  # [b, t]: the node attached at step t
    images = torch.arange(num_images)
    nonempty = images[counts > 0]
    rank[nonempty, root[nonempty]] = 0
    by_rank[nonempty, 0] = root[nonempty]
    placed = torch.zeros(num_images, size, dtype=torch.bool)
    placed[nonempty, root[nonempty]] = True
    # best[b, j]: the highest score of j under a placed parent; best_rank: that parent's rank (the earliest
    # placed parent among equal scores, as only a strictly higher score replaces it)
    best = padded[images, root]
    best_rank = torch.zeros(num_images, size, dtype=torch.int64)
    for step in range(1, size):
        active = images[counts > step]
        remaining = valid[active] & ~placed[active]
        value = torch.where(remaining, best[active], float("-inf"))
        top = value.max(dim=1, keepdim=True).values
        order_key = torch.where(remaining & (value == top), best_rank[active] * size + slots, size * size)
        child = order_key.argmin(dim=1)
        parent[active, child] = by_rank[active, best_rank[active, child]]
        rank[active, child] = step
        by_rank[active, step] = child
        placed[active, child] = True
        child_row = padded[active, child]
        improves = child_row > best[active]
        best[active] = torch.where(improves, child_row, best[active])
        best_rank[active] = torch.where(improves, step, best_rank[active])
    return MultiwayTrees(counts.tolist(), root, parent, rank)


@dataclass
class BinaryForest:
    """The left-child / right-sibling binary trees of N = ΣN_b nodes, flat indices image after image.

    parent: (N,) int64 binary parent (the multi-way parent for a first child, the previous sibling for a
    later one), -1 at roots. left, right: (N,) int64 left / right child, -1 when there is none.
    depth: (N,) int64 binary depth, 0 at roots. image: (N,) int64 the image of each node.
    """

    parent: Tensor
    left: Tensor
    right: Tensor
    depth: Tensor
    image: Tensor


def binarize(trees: MultiwayTrees) -> BinaryForest:
    """The binary form of ``trees`` (see ``BinaryForest``), flat over images."""
    counts = trees.num_objects
    total = sum(counts)
    image = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.int64))
    offsets = torch.tensor([0, *counts[:-1]], dtype=torch.int64).cumsum(0) if counts else torch.zeros(0, dtype=torch.int64)
    local = torch.arange(total) - offsets[image] if total else torch.zeros(0, dtype=torch.int64)
    multiway_parent = trees.parent[image, local]
    rank = trees.rank[image, local]
    flat_parent = torch.where(multiway_parent >= 0, multiway_parent + offsets[image], -1)
    # siblings sorted by (parent, rank); roots (parent -1) sort first and are skipped
    size = max(counts, default=0) + 1
    order = torch.argsort((flat_parent + 1) * size + rank)
    children = order[flat_parent[order] >= 0]
    child_parent = flat_parent[children]
    is_first = torch.ones(len(children), dtype=torch.bool)
    is_first[1:] = child_parent[1:] != child_parent[:-1]
    previous = torch.roll(children, 1)
    binary_parent = torch.full((total,), -1, dtype=torch.int64)
    binary_parent[children] = torch.where(is_first, child_parent, previous)
    left = torch.full((total,), -1, dtype=torch.int64)
    right = torch.full((total,), -1, dtype=torch.int64)
    left[child_parent[is_first]] = children[is_first]
    right[previous[~is_first]] = children[~is_first]
    return BinaryForest(binary_parent, left, right, _depths(binary_parent), image)


def _depths(parent: Tensor) -> Tensor:
    """(N,) parent indices (-1 at roots) -> (N,) depths, by pointer jumping (log2 of the depth steps)."""
    depth = (parent >= 0).long()
    pointer = parent.clone()
    while bool((pointer >= 0).any()):
        has_pointer = pointer >= 0
        target = pointer.clamp(min=0)
        depth = torch.where(has_pointer, depth + depth[target], depth)
        pointer = torch.where(has_pointer, pointer[target], pointer)
    return depth


@dataclass
class TreeSchedule:
    """The order in which the level-batched tree LSTMs visit the N nodes of a ``BinaryForest``: depth by
    depth over all trees (the down pass from depth 0, the up pass from the deepest level).

    levels[d]: (n_d,) int64 the nodes of depth d, ascending. parent_slot[d]: (n_d,) position of each node's
    binary parent in levels[d - 1] (an empty tensor for d = 0). left_slot[d], right_slot[d]: (n_d,)
    position of the left / right child in levels[d + 1], n_{d+1} when there is none (the index of a zero
    row appended to that level's states). node_position: (N,) the position of each node in
    cat(levels), to bring level-ordered rows back to node order. image: (N,) the image of each node.
    ``level_order`` is cat(levels) (rows in level order) and ``level_sizes`` the n_d.
    """

    levels: list[Tensor]
    parent_slot: list[Tensor]
    left_slot: list[Tensor]
    right_slot: list[Tensor]
    node_position: Tensor
    image: Tensor

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def level_sizes(self) -> list[int]:
        return [len(level) for level in self.levels]

    @property
    def level_order(self) -> Tensor:
        return torch.cat(self.levels) if self.levels else self.node_position

    def by_level(self, rows: Tensor) -> tuple[Tensor, ...]:
        """(N, k) rows in node order -> per depth d the (n_d, k) rows of levels[d] (one gather)."""
        return rows.index_select(0, self.level_order).split(self.level_sizes)

    def to(self, device: torch.device | str) -> "TreeSchedule":
        """The schedule with every tensor on ``device`` (one copy)."""
        tensors = [*self.levels, *self.parent_slot, *self.left_slot, *self.right_slot, self.node_position, self.image]
        moved = list(torch.cat(tensors).to(device).split([len(tensor) for tensor in tensors]))
        levels = self.num_levels
        return TreeSchedule(moved[:levels], moved[levels:2 * levels], moved[2 * levels:3 * levels],
                            moved[3 * levels:4 * levels], moved[-2], moved[-1])


def tree_schedule(forest: BinaryForest) -> TreeSchedule:
    """The depth-by-depth schedule of ``forest`` (see ``TreeSchedule``)."""
    total = len(forest.depth)
    num_levels = int(forest.depth.max()) + 1 if total else 0
    node_order = torch.sort(forest.depth, stable=True).indices
    sizes = torch.bincount(forest.depth, minlength=num_levels).tolist()
    levels = list(node_order.split(sizes))
    node_position = torch.empty(total, dtype=torch.int64)
    node_position[node_order] = torch.arange(total)
    level_start = torch.tensor([0, *sizes[:-1]], dtype=torch.int64).cumsum(0) if sizes else torch.zeros(0, dtype=torch.int64)
    slot = node_position - level_start[forest.depth] if total else node_position
    empty = torch.zeros(0, dtype=torch.int64)
    parent_slot, left_slot, right_slot = [], [], []
    for depth, nodes in enumerate(levels):
        parent_slot.append(slot[forest.parent[nodes]] if depth else empty)
        next_size = sizes[depth + 1] if depth + 1 < num_levels else 0
        for children, slots in ((forest.left[nodes], left_slot), (forest.right[nodes], right_slot)):
            slots.append(torch.where(children >= 0, slot[children.clamp(min=0)], next_size))
    return TreeSchedule(levels, parent_slot, left_slot, right_slot, node_position, forest.image)

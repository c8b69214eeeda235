"""Which (subject, object) pairs the relation head sees, per image (docs/reference.md#pair-sampling).

Training (``RelationPairSampler``), SGB's ``RelationSampling`` semantics:

* PredCls / SGCls (``gtbox_relsample``): the proposals are the GT boxes. Positives are the GT pairs,
  labelled with their predicate, capped at ``max_positives`` by a uniformly random subset; negatives are
  random non-GT ordered pairs s != o filling the image's budget of ``batch_size_per_image`` pairs.
* SGDet (``detect_relsample``, after neural-motifs' ``rel_assignments``): a detection matches a GT box when
  it carries the same GT label and IoU (+1 convention) > ``fg_iou_threshold``. Every pair of distinct
  detections matching the subject and object of a GT relation is a positive candidate for it; at most
  ``num_sample_per_gt_rel`` of them are drawn without replacement with probability proportional to
  IoU(gt subject, p) * IoU(gt object, q). All matching pairs, drawn or not, leave the negatives, which are
  the other ordered pairs of labelled (matched to some GT) detections.

Pairs come back as (R, 2) int64 indices into the image's boxes, positives first, with (R,) int64 predicate
labels (0 = background). Randomness uses the global torch RNG of the tensors' device only, so restoring a
checkpoint's RNG state reproduces the sampling.

Testing (``all_ordered_pairs``, SGB ``prepare_test_pairs``): every ordered pair i != j.
Stage 2 over cached features (``pair_grid``): every ordered pair, diagonal included, one row per pair.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .box_geometry import box_iou_legacy


class RelationPairSampler:
    """Training pair sampling for one image at a time.

    Args:
        batch_size_per_image: the most pairs per image (BATCH_SIZE_PER_IMAGE).
        positive_fraction: the most positives are int(batch_size_per_image * positive_fraction).
        fg_iou_threshold: SGDet: a detection matches a GT box when IoU > this (strict; FG_IOU_THRESHOLD).
        num_sample_per_gt_rel: SGDet: the most detection pairs kept per GT relation (NUM_SAMPLE_PER_GT_REL).
        require_box_overlap: SGDet: negatives only among pairs with 0 < IoU(p, q) < 1 (REQUIRE_BOX_OVERLAP).
    """

    def __init__(self, batch_size_per_image: int = 1024, positive_fraction: float = 0.25,
                 fg_iou_threshold: float = 0.5, num_sample_per_gt_rel: int = 4,
                 require_box_overlap: bool = False) -> None:
        if batch_size_per_image <= 0:
            raise ValueError(f"batch_size_per_image must be positive, got {batch_size_per_image}")
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must lie in [0, 1], got {positive_fraction}")
        if num_sample_per_gt_rel <= 0:
            raise ValueError(f"num_sample_per_gt_rel must be positive, got {num_sample_per_gt_rel}")
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.fg_iou_threshold = fg_iou_threshold
        self.num_sample_per_gt_rel = num_sample_per_gt_rel
        self.require_box_overlap = require_box_overlap

    @property
    def max_positives(self) -> int:
        return int(self.batch_size_per_image * self.positive_fraction)

    def gt_box_pairs(self, relation: Tensor) -> tuple[Tensor, Tensor]:
        """PredCls / SGCls sampling on the N GT boxes of one image.

        relation: (N, N) int64 GT predicate of each ordered pair (s, o), 0 = no relation, -1 = masked by
        bi-level resampling (neither a positive nor a negative).
        Returns pairs (R, 2) int64 and labels (R,) int64: the positives (pairs with relation > 0, labelled
        with it, at most ``max_positives`` of them, a uniformly random subset when there are more), then
        a random subset of the ordered non-GT pairs s != o of size batch_size_per_image - #positives (all
        of them if fewer), labelled 0. An image with a single box and no relation has no pair at all; like
        SGB's SGDet sampler, it then gets the dummy pair (0, 0) labelled 0. N = 0 gives empty tensors.
        """
        _check_square(relation, "relation")
        is_gt_pair = relation > 0
        positive_pairs = torch.nonzero(is_gt_pair)
        positive_labels = relation[is_gt_pair]
        positive_pairs, positive_labels = self._cap_positives(positive_pairs, positive_labels)
        negative_candidates = _off_diagonal(relation.shape[0], relation.device) & (relation == 0)
        negative_pairs = self._sample_negatives(negative_candidates, positive_pairs.shape[0])
        return _assemble(positive_pairs, positive_labels, negative_pairs, relation.shape[0])

    def detection_pairs(self, detection_boxes: Tensor, detection_labels: Tensor, gt_boxes: Tensor,
                        gt_labels: Tensor, gt_relation: Tensor) -> tuple[Tensor, Tensor]:
        """SGDet sampling on the M detections of one image.

        detection_boxes: (M, 4) xyxy; detection_labels: (M,) int64 GT label assigned to each detection's
        proposal (0 = unmatched); gt_boxes: (G, 4) xyxy; gt_labels: (G,) int64;
        gt_relation: (G, G) int64 GT predicate of each ordered GT pair, 0 = no relation.
        Returns pairs (R, 2) int64 indices into the detections and labels (R,) int64: positives (at most
        ``num_sample_per_gt_rel`` per GT relation, at most ``max_positives`` in all) then negatives
        (labelled 0, at most batch_size_per_image - #positives). When there is neither, the dummy pair
        (0, 0) labelled 0 (empty tensors when M = 0).
        """
        _check_square(gt_relation, "gt_relation")
        gt_detection_iou, is_match = self._detection_matches(detection_boxes, detection_labels, gt_boxes, gt_labels)
        gt_pairs = torch.nonzero(gt_relation > 0)  # (R_gt, 2)
        matching_pairs = _matching_detection_pairs(is_match, gt_pairs)  # (R_gt, M, M)
        negative_candidates = self._detection_candidates(detection_boxes, detection_labels)
        negative_candidates &= ~matching_pairs.any(dim=0)
        pair_weights = gt_detection_iou[gt_pairs[:, 0], :, None] * gt_detection_iou[gt_pairs[:, 1], None, :]
        kept = self._sample_per_gt_relation(matching_pairs, pair_weights)
        relation_index, subjects, objects = torch.nonzero(kept, as_tuple=True)
        positive_pairs = torch.stack([subjects, objects], dim=1)
        positive_labels = gt_relation[gt_pairs[relation_index, 0], gt_pairs[relation_index, 1]]
        positive_pairs, positive_labels = self._cap_positives(positive_pairs, positive_labels)
        negative_pairs = self._sample_negatives(negative_candidates, positive_pairs.shape[0])
        return _assemble(positive_pairs, positive_labels, negative_pairs, detection_boxes.shape[0])

    def gt_box_adjacency(self, relation: Tensor) -> Tensor:
        """PredCls / SGCls: (N, N) int64, 1 where the GT boxes i and j are related in either direction
        (relation (N, N) > 0 at (i, j) or (j, i)), SGB's symmetric ``rel_sym_binarys``."""
        _check_square(relation, "relation")
        related = relation > 0
        return (related | related.T).long()

    def detection_adjacency(self, detection_boxes: Tensor, detection_labels: Tensor, gt_boxes: Tensor,
                            gt_labels: Tensor, gt_relation: Tensor) -> Tensor:
        """SGDet: (M, M) int64, 1 where detection p matches the GT subject and q the GT object of some GT
        relation, or the reverse (SGB ``motif_rel_fg_bg_sampling``'s ``binary_rel``; matching as in
        ``detection_pairs``; p = q is kept when one detection matches both). Arguments as ``detection_pairs``."""
        _check_square(gt_relation, "gt_relation")
        _, is_match = self._detection_matches(detection_boxes, detection_labels, gt_boxes, gt_labels)
        gt_pairs = torch.nonzero(gt_relation > 0)
        subject_match = is_match[gt_pairs[:, 0]].float()  # (R_gt, M)
        object_match = is_match[gt_pairs[:, 1]].float()
        related = (subject_match.T @ object_match) > 0
        return (related | related.T).long()

    def _detection_matches(self, detection_boxes: Tensor, detection_labels: Tensor, gt_boxes: Tensor,
                           gt_labels: Tensor) -> tuple[Tensor, Tensor]:
        """(IoU (G, M) with the +1 convention, is_match (G, M) bool: same label and IoU > fg_iou_threshold)."""
        gt_detection_iou = box_iou_legacy(gt_boxes, detection_boxes)
        is_match = (gt_labels[:, None] == detection_labels[None, :]) & (gt_detection_iou > self.fg_iou_threshold)
        return gt_detection_iou, is_match

    def _detection_candidates(self, detection_boxes: Tensor, detection_labels: Tensor) -> Tensor:
        """(M, M) bool: ordered pairs p != q of labelled detections (0 < IoU < 1 with require_box_overlap)."""
        num_detections = detection_boxes.shape[0]
        if self.require_box_overlap:
            self_iou = box_iou_legacy(detection_boxes, detection_boxes)
            candidates = (self_iou > 0) & (self_iou < 1)
        else:
            candidates = _off_diagonal(num_detections, detection_boxes.device)
        labelled = detection_labels > 0
        return candidates & labelled[:, None] & labelled[None, :]

    def _sample_per_gt_relation(self, matching_pairs: Tensor, pair_weights: Tensor) -> Tensor:
        """Keep at most ``num_sample_per_gt_rel`` matching pairs per GT relation.

        matching_pairs: (R_gt, M, M) bool; pair_weights: (R_gt, M, M) float, positive where matching.
        Returns (R_gt, M, M) bool: rows with few matches keep all of them, the others a draw without
        replacement with probability proportional to the weights.
        """
        flat_matching = matching_pairs.flatten(start_dim=1)
        oversized = torch.nonzero(flat_matching.sum(dim=1) > self.num_sample_per_gt_rel).squeeze(1)
        if oversized.numel() == 0:
            return matching_pairs
        weights = pair_weights.flatten(start_dim=1)[oversized] * flat_matching[oversized]
        drawn = torch.multinomial(weights, self.num_sample_per_gt_rel, replacement=False)
        kept = flat_matching.clone()
        kept[oversized] = torch.zeros_like(kept[oversized]).scatter_(1, drawn, True)
        return kept.view_as(matching_pairs)

    def _cap_positives(self, pairs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(P, 2), (P,) -> a uniformly random subset of ``max_positives`` rows when P exceeds it."""
        if pairs.shape[0] <= self.max_positives:
            return pairs, labels
        keep = torch.randperm(pairs.shape[0], device=pairs.device)[:self.max_positives]
        return pairs[keep], labels[keep]

    def _sample_negatives(self, candidates: Tensor, num_positives: int) -> Tensor:
        """candidates (N, N) bool -> (K, 2) int64, a random subset (random order) of the candidate pairs,
        K = min(batch_size_per_image - num_positives, #candidates)."""
        candidate_pairs = torch.nonzero(candidates)
        keep = torch.randperm(candidate_pairs.shape[0], device=candidates.device)
        return candidate_pairs[keep[:self.batch_size_per_image - num_positives]]


def all_ordered_pairs(num_objects: int, device: torch.device | str) -> Tensor:
    """Test-time pairs (SGB ``prepare_test_pairs``): every ordered pair i != j, row-major, as (R, 2) int64.

    One object gives the placeholder pair (0, 0); no object gives an empty (0, 2) tensor.
    """
    if num_objects == 1:
        return torch.zeros((1, 2), dtype=torch.int64, device=device)
    return torch.nonzero(_off_diagonal(num_objects, device))


def pair_grid(num_objects: int, device: torch.device | str) -> Tensor:
    """Every ordered pair (s, o) of ``num_objects`` objects, the diagonal included, row-major: row
    s * num_objects + o is (s, o). (num_objects², 2) int64. It holds every pair PredCls / SGCls sampling can
    draw (GT pairs, non-GT pairs s != o, the dummy (0, 0)), so a sampled pair's row is found by that formula."""
    objects = torch.arange(num_objects, device=device)
    return torch.stack(torch.meshgrid(objects, objects, indexing="ij"), dim=2).reshape(-1, 2)


def pair_grid_rows(pairs: Tensor, num_objects: int) -> Tensor:
    """Rows of ``pair_grid(num_objects)`` holding ``pairs`` (R, 2) int64. -> (R,) int64."""
    return pairs[:, 0] * num_objects + pairs[:, 1]


def _matching_detection_pairs(is_match: Tensor, gt_pairs: Tensor) -> Tensor:
    """is_match (G, M) bool, gt_pairs (R_gt, 2) int64 -> (R_gt, M, M) bool: p matches the relation's GT
    subject, q its GT object, and p != q."""
    num_detections = is_match.shape[1]
    subject_match = is_match[gt_pairs[:, 0]]
    object_match = is_match[gt_pairs[:, 1]]
    distinct = _off_diagonal(num_detections, is_match.device)
    return subject_match[:, :, None] & object_match[:, None, :] & distinct


def _off_diagonal(size: int, device: torch.device | str | None) -> Tensor:
    """(size, size) bool, True off the diagonal."""
    return ~torch.eye(size, dtype=torch.bool, device=device)


def _check_square(matrix: Tensor, name: str) -> None:
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {tuple(matrix.shape)}")


def _assemble(positive_pairs: Tensor, positive_labels: Tensor, negative_pairs: Tensor,
              num_objects: int) -> tuple[Tensor, Tensor]:
    """Positives then negatives (label 0) -> pairs (R, 2) int64, labels (R,) int64; the dummy pair (0, 0)
    labelled 0 when both are empty and there is at least one object."""
    pairs = torch.cat([positive_pairs, negative_pairs], dim=0)
    labels = torch.cat([positive_labels.long(), negative_pairs.new_zeros(negative_pairs.shape[0])], dim=0)
    if pairs.shape[0] == 0 and num_objects > 0:
        return pairs.new_zeros((1, 2)), labels.new_zeros(1)
    return pairs, labels

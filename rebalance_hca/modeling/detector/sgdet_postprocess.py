"""Box-head post-processing of SGB (``roi_box_head/inference.py``,
docs/reference.md#object-proposals step 4), vectorised.

Per image: decode the class-specific boxes and clip them; keep the (proposal, class) entries with
score > SCORE_THRESH (background excluded); NMS per class at ROI_HEADS.NMS keeping at most
POST_NMS_PER_CLS_TOPN per class; with NMS_FILTER_DUPLICATES each proposal keeps only its best surviving
class; finally the DETECTIONS_PER_IMG best by score, ties at the threshold kept (SGB's kthvalue).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection._utils import BoxCoder

from .conventions import TORCHVISION_CONVENTION

from .ops import keep_top_per_group


@dataclass
class Detections:
    """Detections of one image, in the frame of the detector's input (resized, unpadded).

    boxes: (N, 4) float xyxy, the regressed box of each detection's class, clipped to the image.
    labels: (N,) int64 detector classes in 1..C-1.
    scores: (N,) float softmax probability of that class.
    class_logits: (N, C) float, the box head's full logits for the detection's proposal.
    boxes_per_cls: (N, C, 4) float, the proposal's regressed and clipped box for every class.
    proposal_indices: (N,) int64 index of the source proposal in the image's proposal list.
    gt_labels: (N,) int64 label of the ground truth matched to the source proposal (IoU >= the RoI head's
        FG_IOU_THRESHOLD, else 0); present when targets were given to ``detect`` (SGDet relation training).
    masks: (N, 1, M, M) float mask probabilities in the detection's box (MODEL.MASK_ON only).
    """

    boxes: Tensor
    labels: Tensor
    scores: Tensor
    class_logits: Tensor
    boxes_per_cls: Tensor
    proposal_indices: Tensor
    gt_labels: Tensor | None = None
    masks: Tensor | None = None

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def to(self, device: torch.device | str) -> "Detections":
        """A copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(self, **moved)

    def select(self, index: Tensor) -> "Detections":
        """The detections at ``index`` (an index or bool mask over N), every field indexed alike."""
        picked = {f.name: getattr(self, f.name)[index] for f in fields(self) if getattr(self, f.name) is not None}
        return replace(self, **picked)


class SGDetPostProcessor:
    """Turns box-head outputs on proposals into per-image Detections (SGB's PostProcessor).

    score_thresh: SCORE_THRESH (strict >); nms_thresh: ROI_HEADS.NMS; post_nms_per_cls_topn: cap per class
    after NMS (<= 0: none); filter_duplicates: NMS_FILTER_DUPLICATES; detections_per_img: DETECTIONS_PER_IMG
    (<= 0: no limit); box_coder: the box head's coder (weights BBOX_REG_WEIGHTS); clip(boxes (..., 4),
    (H, W)) and batched_nms(boxes, scores, groups, threshold): the detector's box convention.
    """

    def __init__(self, score_thresh: float, nms_thresh: float, post_nms_per_cls_topn: int,
                 filter_duplicates: bool, detections_per_img: int, box_coder: BoxCoder,
                 clip: Callable[[Tensor, tuple[int, int]], Tensor] = TORCHVISION_CONVENTION.clip,
                 batched_nms: Callable[[Tensor, Tensor, Tensor, float], Tensor] = TORCHVISION_CONVENTION.batched_nms
                 ) -> None:
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.post_nms_per_cls_topn = post_nms_per_cls_topn
        self.filter_duplicates = filter_duplicates
        self.detections_per_img = detections_per_img
        self.box_coder = box_coder
        self.clip = clip
        self.batched_nms = batched_nms

    def __call__(self, class_logits: Tensor, box_regression: Tensor, proposals: list[Tensor],
                 image_sizes: list[tuple[int, int]]) -> list[Detections]:
        """class_logits (sum P_i, C), box_regression (sum P_i, 4C), proposals [(P_i, 4)], image_sizes
        [(h, w)] -> one Detections per image. Detections are ordered as SGB orders them: by proposal
        index with filter_duplicates, otherwise by class then decreasing score. Computed in float32
        whatever the autocast dtype, so boxes keep full coordinate precision."""
        class_logits, box_regression = class_logits.float(), box_regression.float()
        num_classes = class_logits.shape[1]
        counts = [len(p) for p in proposals]
        decoded = self.box_coder.decode(box_regression, proposals).reshape(-1, num_classes, 4)
        results = []
        for logits, boxes_per_cls, image_size in zip(class_logits.split(counts), decoded.split(counts), image_sizes):
            boxes_per_cls = self.clip(boxes_per_cls, image_size)
            results.append(self._single_image(logits, boxes_per_cls))
        return results

    def _single_image(self, logits: Tensor, boxes_per_cls: Tensor) -> Detections:
        """logits (P, C), boxes_per_cls (P, C, 4) -> Detections of one image."""
        scores = F.softmax(logits, dim=-1)
        candidate_proposal, candidate_class = torch.nonzero(scores[:, 1:] > self.score_thresh, as_tuple=True)
        candidate_class = candidate_class + 1
        candidate_scores = scores[candidate_proposal, candidate_class]
        candidate_boxes = boxes_per_cls[candidate_proposal, candidate_class]
        keep = self.batched_nms(candidate_boxes, candidate_scores, candidate_class, self.nms_thresh)
        keep = keep_top_per_group(keep, candidate_class[keep], self.post_nms_per_cls_topn)
        if self.filter_duplicates:
            surviving = torch.zeros_like(scores)
            surviving[candidate_proposal[keep], candidate_class[keep]] = candidate_scores[keep]
            best_scores, best_classes = surviving.max(dim=1)
            proposal_index = torch.nonzero(best_scores > 0).squeeze(1)
            label, score = best_classes[proposal_index], best_scores[proposal_index]
        else:
            keep = keep[torch.sort(candidate_class[keep], stable=True).indices]
            proposal_index, label, score = candidate_proposal[keep], candidate_class[keep], candidate_scores[keep]
        top = self._top_detections(score)
        proposal_index, label, score = proposal_index[top], label[top], score[top]
        return Detections(
            boxes=boxes_per_cls[proposal_index, label],
            labels=label,
            scores=score,
            class_logits=logits[proposal_index],
            boxes_per_cls=boxes_per_cls[proposal_index],
            proposal_indices=proposal_index,
        )

    def _top_detections(self, scores: Tensor) -> Tensor:
        """Indices of the DETECTIONS_PER_IMG best scores, keeping every score tied with the last one."""
        count = scores.numel()
        if not count > self.detections_per_img > 0:
            return torch.arange(count, device=scores.device)
        threshold = torch.kthvalue(scores.cpu(), count - self.detections_per_img + 1).values.item()
        return torch.nonzero(scores >= threshold).squeeze(1)

"""SGDet post-processing and the RPN's proposal selection on hand-worked examples
(docs/reference.md#object-proposals, #detector-architecture)."""
from __future__ import annotations

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.rpn import RPNHead

from rebalance_hca.modeling.detector import SGDetPostProcessor
from rebalance_hca.modeling.detector.ops import keep_top_per_group, rank_within_group
from rebalance_hca.modeling.detector.rpn import FixedStrideAnchorGenerator, FPNRegionProposalNetwork

IMAGE_SIZE = (100, 100)

# Four proposals; p0 and p1 overlap with IoU 90/110 = 0.82, p2 is far away, p3 has no class above 0.01.
PROPOSALS = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0],
                          [50.0, 50.0, 60.0, 60.0], [0.0, 0.0, 10.0, 10.0]])
# Class probabilities (background, c1, c2, c3) of each proposal.
PROBABILITIES = torch.tensor([[0.095, 0.6, 0.3, 0.005],
                              [0.1, 0.5, 0.395, 0.005],
                              [0.2, 0.005, 0.4, 0.395],
                              [0.985, 0.005, 0.005, 0.005]])


def _regression() -> torch.Tensor:
    """Zero deltas (boxes = proposals) except p2/c3: dx = 1 with weight 10 -> shifted right by 0.1 w = 1 px."""
    deltas = torch.zeros(4, 4, 4)
    deltas[2, 3, 0] = 1.0
    return deltas.reshape(4, 16)


def _processor(filter_duplicates: bool, per_class: int = 300, per_image: int = 80) -> SGDetPostProcessor:
    return SGDetPostProcessor(score_thresh=0.01, nms_thresh=0.3, post_nms_per_cls_topn=per_class,
                              filter_duplicates=filter_duplicates, detections_per_img=per_image,
                              box_coder=BoxCoder((10.0, 10.0, 5.0, 5.0)))


def _run(processor: SGDetPostProcessor):
    return processor(PROBABILITIES.log(), _regression(), [PROPOSALS], [IMAGE_SIZE])[0]


def test_filter_duplicates_keeps_one_class_per_proposal():
    # c1: p0 (0.6) suppresses p1 (0.5). c2: p2 (0.4), p1 (0.395) kept, p0 (0.3) suppressed by p1. c3: p2.
    # Best surviving class: p0 -> c1 0.6, p1 -> c2 0.395, p2 -> c2 0.4 (beats its c3 0.395).
    detections = _run(_processor(filter_duplicates=True))
    assert detections.proposal_indices.tolist() == [0, 1, 2]
    assert detections.labels.tolist() == [1, 2, 2]
    assert detections.scores.tolist() == pytest.approx([0.6, 0.395, 0.4], abs=1e-6)
    assert torch.allclose(detections.boxes, PROPOSALS[:3])
    assert torch.allclose(detections.class_logits, PROBABILITIES[:3].log())
    assert detections.boxes_per_cls.shape == (3, 4, 4)
    assert torch.allclose(detections.boxes_per_cls[2, 3], torch.tensor([51.0, 50.0, 61.0, 60.0]))
    assert torch.allclose(detections.boxes_per_cls[2, 2], PROPOSALS[2])


def test_without_filter_duplicates_entries_are_class_major():
    detections = _run(_processor(filter_duplicates=False))
    assert detections.labels.tolist() == [1, 2, 2, 3]
    assert detections.proposal_indices.tolist() == [0, 2, 1, 2]
    assert detections.scores.tolist() == pytest.approx([0.6, 0.4, 0.395, 0.395], abs=1e-6)
    assert torch.allclose(detections.boxes[3], torch.tensor([51.0, 50.0, 61.0, 60.0]))


def test_per_class_cap_after_nms():
    detections = _run(_processor(filter_duplicates=False, per_class=1))
    assert list(zip(detections.proposal_indices.tolist(), detections.labels.tolist())) == [(0, 1), (2, 2), (2, 3)]


def test_detections_per_image_keeps_the_best_scores():
    detections = _run(_processor(filter_duplicates=True, per_image=2))
    assert detections.proposal_indices.tolist() == [0, 2]  # scores 0.6 and 0.4; 0.395 dropped


def test_detections_per_image_keeps_ties():
    proposals = torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 40.0, 40.0], [60.0, 60.0, 70.0, 70.0]])
    logits = torch.tensor([[0.0, 0.0]]).repeat(3, 1)  # every proposal: class 1 at exactly 0.5
    processor = SGDetPostProcessor(0.01, 0.3, 300, True, detections_per_img=1,
                                   box_coder=BoxCoder((10.0, 10.0, 5.0, 5.0)))
    detections = processor(logits, torch.zeros(3, 8), [proposals], [IMAGE_SIZE])[0]
    assert len(detections) == 3


def test_boxes_are_clipped_and_images_are_split():
    proposals = [torch.tensor([[90.0, 90.0, 110.0, 110.0]]), torch.tensor([[5.0, 5.0, 20.0, 20.0]])]
    logits = torch.tensor([[0.0, 3.0], [0.0, 3.0]])
    detections = _processor(True)(logits, torch.zeros(2, 8), proposals, [(100, 105), (50, 50)])
    assert detections[0].boxes.tolist() == [[90.0, 90.0, 105.0, 100.0]]
    assert detections[1].boxes.tolist() == [[5.0, 5.0, 20.0, 20.0]]
    assert detections[0].boxes_per_cls[0, 0].tolist() == [90.0, 90.0, 105.0, 100.0]


def test_empty_input_gives_empty_detections():
    detections = _processor(True)(torch.zeros(0, 4), torch.zeros(0, 16), [torch.zeros(0, 4)], [IMAGE_SIZE])[0]
    assert len(detections) == 0 and detections.boxes_per_cls.shape == (0, 4, 4)


def test_rank_within_group_and_cap():
    assert rank_within_group(torch.tensor([3, 1, 3, 3, 1])).tolist() == [0, 0, 1, 2, 1]
    keep = torch.tensor([7, 4, 9, 2, 5])
    assert keep_top_per_group(keep, torch.tensor([3, 1, 3, 3, 1]), 2).tolist() == [7, 4, 9, 5]
    assert keep_top_per_group(keep, torch.tensor([3, 1, 3, 3, 1]), 0).tolist() == [7, 4, 9, 2, 5]


def _rpn(per_level: int, fpn_post: int, per_batch: bool = False) -> FPNRegionProposalNetwork:
    anchor_generator = FixedStrideAnchorGenerator([(32,), (64,)], [(1.0,), (1.0,)], [4, 8])
    return FPNRegionProposalNetwork(
        anchor_generator, RPNHead(8, 1), fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256,
        positive_fraction=0.5, pre_nms_top_n={"training": 10, "testing": 10},
        post_nms_top_n={"training": fpn_post, "testing": fpn_post}, nms_thresh=0.7,
        post_nms_top_n_per_level={"training": per_level, "testing": per_level},
        fpn_post_nms_per_batch=per_batch, min_size=0)


# Level 0: three disjoint boxes with logits 5, 4.8, 4.6; level 1: two with logits 1, 0.5.
RPN_BOXES = torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [0, 40, 20, 60], [40, 40, 60, 60]])
RPN_LOGITS = torch.tensor([5.0, 4.8, 4.6, 1.0, 0.5])


def test_rpn_caps_each_level_before_the_fpn_top_n():
    rpn = _rpn(per_level=2, fpn_post=3).eval()
    boxes, scores = rpn.filter_proposals(RPN_BOXES[None], RPN_LOGITS[:, None], [(100, 100)], [3, 2])
    # per level: level 0 keeps 5 and 4.8, level 1 keeps 1 and 0.5; then the best 3 over both levels
    assert boxes[0].tolist() == RPN_BOXES[[0, 1, 3]].tolist()
    assert scores[0].tolist() == pytest.approx(torch.sigmoid(RPN_LOGITS[[0, 1, 3]]).tolist())


def test_rpn_top_n_over_the_batch_in_training():
    rpn = _rpn(per_level=3, fpn_post=4, per_batch=True).train()
    proposals = torch.stack([RPN_BOXES, RPN_BOXES])
    logits = torch.cat([RPN_LOGITS, RPN_LOGITS - 4.7])[:, None]  # image 1: 0.3, 0.1, -0.1, -3.7, -4.2
    boxes, _ = rpn.filter_proposals(proposals, logits, [(100, 100), (100, 100)], [3, 2])
    # over the batch the 4 best are image 0's 5, 4.8, 4.6 and 1.0
    assert [len(b) for b in boxes] == [4, 0]
    rpn.eval()
    boxes, _ = rpn.filter_proposals(proposals, logits, [(100, 100), (100, 100)], [3, 2])
    assert [len(b) for b in boxes] == [4, 4]


def test_detections_select_and_move_index_every_field():
    detections = _run(_processor(filter_duplicates=True))
    detections.gt_labels = torch.tensor([4, 0, 2])
    picked = detections.select(detections.scores > 0.399).to("cpu")
    assert len(picked) == 2
    assert picked.proposal_indices.tolist() == [0, 2] and picked.gt_labels.tolist() == [4, 2]
    assert picked.boxes_per_cls.shape == (2, 4, 4) and picked.class_logits.shape == (2, 4)
    assert picked.masks is None

"""MODEL.BOX_CONVENTION "sgb": SGB's +1 conventions, on hand-worked small cases and against loop
references of maskrcnn_benchmark's formulas (docs/reference.md#sgb-cell-anchors, #sgb-box-conventions)."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from rebalance_hca.modeling.detector import build_detector
from rebalance_hca.modeling.detector.conventions import (SGB_CONVENTION, TORCHVISION_CONVENTION, InclusiveBoxCoder,
                                                         InclusiveLevelMapper, batched_nms_inclusive,
                                                         clip_boxes_inclusive, remove_small_boxes_inclusive)
from rebalance_hca.modeling.detector.roi_heads import build_fpn_roi_pooler
from rebalance_hca.modeling.detector.sgdet_postprocess import SGDetPostProcessor
from rebalance_hca.structures.boxes import box_iou_legacy
from detector_testing import random_images, tiny_config
from sgb_testing import SGB_VG_CELL_ANCHORS


@pytest.fixture(scope="module")
def sgb_detector():
    torch.manual_seed(0)
    detector = build_detector(tiny_config("MODEL.BOX_CONVENTION", "sgb")).eval()
    with torch.no_grad():  # objectness and deltas large enough that NMS and clipping have work to do
        detector.rpn.head.cls_logits.weight.normal_(std=0.5)
        detector.rpn.head.bbox_pred.weight.normal_(std=0.2)
    return detector


def test_cell_anchors_are_sgbs_table(sgb_detector):
    cell_anchors = sgb_detector.rpn.anchor_generator.cell_anchors
    for level, expected in enumerate(SGB_VG_CELL_ANCHORS):
        assert cell_anchors[level].tolist() == [list(map(float, anchor)) for anchor in expected]


def test_anchor_of_one_cell_is_the_cell_anchor_shifted_and_centred_like_sgb(sgb_detector):
    images = random_images([(8, 12)], padded=(8, 12))
    feature_maps = [torch.zeros(1, 1, 2, 3)] + [torch.zeros(1, 1, 1, 1)] * 4
    anchors = sgb_detector.rpn.anchor_generator(images, feature_maps)[0]
    row, column, ratio = 1, 2, 0  # P2 (stride 4), cell (i=1, j=2), ratio 0.2323: (-30, -6, 33, 9) + (8, 4, 8, 4)
    anchor = anchors[(row * 3 + column) * 4 + ratio]
    assert anchor.tolist() == [-22.0, -2.0, 41.0, 13.0]
    width, height = anchor[2] - anchor[0] + 1, anchor[3] - anchor[1] + 1
    assert (anchor[0] + width / 2, anchor[1] + height / 2) == (column * 4 + 2, row * 4 + 2)  # (j s + s/2, i s + s/2)


def test_inclusive_box_coder_hand_worked():
    coder = InclusiveBoxCoder((1.0, 1.0, 1.0, 1.0))
    box = torch.tensor([[0.0, 0.0, 9.0, 19.0]])  # 10 x 20, centre (5, 10)
    deltas = torch.tensor([[0.1, -0.2, math.log(2.0), 0.0]])
    # centre (5 + 0.1 * 10, 10 - 0.2 * 20) = (6, 6), size 20 x 20 -> (6 - 10, 6 - 10, 6 + 10 - 1, 6 + 10 - 1)
    decoded = coder.decode_single(deltas, box)
    assert torch.allclose(decoded, torch.tensor([[-4.0, -4.0, 15.0, 15.0]]), atol=1e-6)
    assert torch.allclose(coder.encode_single(decoded, box), deltas, atol=1e-6)
    weighted = InclusiveBoxCoder((10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(weighted.decode_single(deltas * torch.tensor([10.0, 10.0, 5.0, 5.0]), box), decoded)


def test_inclusive_nms_on_a_crafted_tie():
    # +1 IoU of b with a: 10 x 5 / 10 x 10 = exactly 0.5, not > 0.5: SGB keeps b. c: +1 IoU 8/24 = 1/3 > 0.3.
    a, b = [0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 4.0]
    boxes = torch.tensor([a, b])
    scores = torch.tensor([0.9, 0.8])
    groups = torch.zeros(2, dtype=torch.int64)
    assert box_iou_legacy(np.array([a]), np.array([b]))[0, 0] == 0.5
    assert batched_nms_inclusive(boxes, scores, groups, 0.5).tolist() == [0, 1]
    assert batched_nms_inclusive(boxes, scores, groups, 0.49).tolist() == [0]
    c, d = [0.0, 0.0, 3.0, 3.0], [2.0, 0.0, 5.0, 3.0]  # plain IoU 3/15 = 0.2, +1 IoU 8/24
    pair = torch.tensor([c, d])
    assert batched_nms_inclusive(pair, scores, groups, 0.3).tolist() == [0]
    assert TORCHVISION_CONVENTION.batched_nms(pair, scores, groups, 0.3).tolist() == [0, 1]


def _loop_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """maskrcnn_benchmark's NMS, written as the loop: best first, suppress +1 IoU > threshold."""
    order, kept = list(np.argsort(-scores, kind="stable")), []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        kept.append(int(i))
        suppressed |= box_iou_legacy(boxes[i:i + 1], boxes, dtype=np.float32)[0] > threshold
    return kept


def test_inclusive_nms_equals_the_loop_reference_on_random_boxes():
    generator = np.random.default_rng(0)
    top_left = generator.integers(0, 40, size=(300, 2)).astype(np.float32)
    boxes = np.concatenate([top_left, top_left + generator.integers(0, 20, size=(300, 2))], axis=1).astype(np.float32)
    scores = generator.permutation(300).astype(np.float32)
    kept = batched_nms_inclusive(torch.from_numpy(boxes), torch.from_numpy(scores), torch.zeros(300, dtype=torch.int64),
                                 0.5).tolist()
    assert kept == _loop_nms(boxes, scores, 0.5)


def test_level_assignment_at_a_level_boundary():
    mapper = InclusiveLevelMapper(2, 5)
    # (0, 0, 223, 223) is 224 x 224 with +1: floor(4 + log2(1 + 1e-6)) = 4 -> P4 (index 2); one pixel less -> P3.
    boxes = [torch.tensor([[0.0, 0.0, 223.0, 223.0], [0.0, 0.0, 222.0, 222.0], [10.0, 10.0, 121.0, 121.0],
                           [0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 999.0, 999.0]])]
    assert mapper(boxes).tolist() == [2, 1, 1, 0, 3]  # 112 x 112 -> P3; tiny -> P2; huge -> P5
    torchvision_pooler = build_fpn_roi_pooler(["0", "1", "2", "3"], 7, 2, (0.25, 0.125, 0.0625, 0.03125))
    assert torchvision_pooler.map_levels(boxes)[0].item() == 1  # sqrt(223 * 223) < 224: P3 without the +1


def test_clipping_and_minimum_size_use_inclusive_widths():
    boxes = torch.tensor([[-5.0, -3.0, 200.0, 300.0], [4.0, 4.0, 4.0, 4.0]])
    assert clip_boxes_inclusive(boxes, (100, 150)).tolist() == [[0.0, 0.0, 149.0, 99.0], [4.0, 4.0, 4.0, 4.0]]
    assert remove_small_boxes_inclusive(boxes, 1.0).tolist() == [0, 1]  # a one-pixel box is 1 x 1
    assert remove_small_boxes_inclusive(boxes, 2.0).tolist() == [0]
    assert TORCHVISION_CONVENTION.remove_small_boxes(boxes, 0.0).tolist() == [0]


def test_straddle_rule_marks_anchors_leaving_the_image(sgb_detector):
    anchors = torch.tensor([[0.0, 0.0, 9.0, 9.0], [-1.0, 0.0, 9.0, 9.0], [0.0, 0.0, 19.0, 9.0], [0.0, 0.0, 20.0, 9.0]])
    assert sgb_detector.rpn.visible_anchors(anchors, (10, 20)).tolist() == [True, False, True, False]


def _reference_proposals(detector, images, features) -> tuple[np.ndarray, np.ndarray]:
    """SGB's RPN inference (``RPNPostProcessor`` with FPN) from the detector's own head outputs, in loops:
    per level top PRE_NMS_TOP_N, +1 decode, clip to W-1/H-1, +1 NMS, POST_NMS_TOP_N; then the best
    FPN_POST_NMS_TOP_N of the image."""
    rpn = detector.rpn
    objectness, deltas = rpn.head(list(features.values()))
    height, width = images.image_sizes[0]
    all_boxes, all_scores = [], []
    for level, (logits, level_deltas) in enumerate(zip(objectness, deltas)):
        count, grid_h, grid_w = logits.shape[1:]
        stride = rpn.anchor_generator.strides[level]
        cell = np.array(SGB_VG_CELL_ANCHORS[level], dtype=np.float32)
        scores = torch.sigmoid(logits[0]).permute(1, 2, 0).reshape(-1).numpy()
        codes = level_deltas[0].reshape(count, 4, grid_h, grid_w).permute(2, 3, 0, 1).reshape(-1, 4).numpy()
        top = np.argsort(-scores, kind="stable")[:200]
        boxes = []
        for index in top:
            i, j, a = index // (grid_w * count), (index // count) % grid_w, index % count
            x1, y1, x2, y2 = cell[a] + np.array([j * stride, i * stride] * 2, dtype=np.float32)
            w, h = x2 - x1 + 1, y2 - y1 + 1
            cx, cy = x1 + 0.5 * w, y1 + 0.5 * h
            dx, dy, dw, dh = codes[index]
            dw, dh = min(dw, math.log(1000.0 / 16)), min(dh, math.log(1000.0 / 16))
            pcx, pcy, pw, ph = dx * w + cx, dy * h + cy, math.exp(dw) * w, math.exp(dh) * h
            box = [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw - 1, pcy + 0.5 * ph - 1]
            boxes.append([min(max(box[0], 0), width - 1), min(max(box[1], 0), height - 1),
                          min(max(box[2], 0), width - 1), min(max(box[3], 0), height - 1)])
        boxes, scores = np.array(boxes, dtype=np.float32), scores[top]
        kept = _loop_nms(boxes, scores, 0.7)[:100]
        all_boxes.append(boxes[kept])
        all_scores.append(scores[kept])
    boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
    best = np.argsort(-scores, kind="stable")[:100]
    return boxes[best], scores[best]


def test_sgb_mode_rpn_proposals_equal_the_loop_reference(sgb_detector):
    images = random_images([(100, 150)], padded=(128, 160), seed=3)
    with torch.no_grad():
        features = sgb_detector.extract_features(images)
        proposals, _ = sgb_detector.rpn(images, features)
        expected_boxes, expected_scores = _reference_proposals(sgb_detector, images, features)
    proposals = proposals[0].numpy()
    assert proposals.shape == expected_boxes.shape
    assert proposals[:, 2].max() <= 149 and proposals[:, 3].max() <= 99
    np.testing.assert_allclose(proposals, expected_boxes, atol=1e-3)


def test_sgb_mode_box_outputs_pool_the_inclusive_numbers_at_sgbs_level(sgb_detector):
    images = random_images([(128, 160)], seed=4)
    # sizes 3..446 px, among them sqrt((w+1)(h+1)) exactly 112 and 224 (level boundaries)
    boxes = torch.tensor([[2.0, 3.0, 4.0, 5.0], [10.0, 10.0, 121.0, 121.0], [0.0, 0.0, 223.0, 223.0],
                          [5.5, 7.25, 60.0, 30.0], [0.0, 0.0, 110.0, 110.0], [1.0, 1.0, 446.0, 446.0]])
    with torch.no_grad():
        features = sgb_detector.extract_features(images)
        outputs = sgb_detector.box_outputs(features, [boxes], images.image_sizes)
        pooled = []
        for box in boxes:
            side = math.sqrt((box[2] - box[0] + 1) * (box[3] - box[1] + 1))
            level = min(max(math.floor(4 + math.log2(side / 224 + 1e-6)), 2), 5)
            rois = torch.cat([torch.zeros(1, 1), box[None]], dim=1)
            pooled.append(roi_align(features[str(level - 2)], rois, 7, spatial_scale=2.0 ** -level,
                                    sampling_ratio=2, aligned=False))
        expected = sgb_detector.roi_heads.box_head(torch.cat(pooled))
        expected_logits, expected_deltas = sgb_detector.roi_heads.box_predictor(expected)
    torch.testing.assert_close(outputs.features, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outputs.class_logits, expected_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outputs.box_regression, expected_deltas, rtol=1e-5, atol=1e-6)


def test_sgdet_postprocessing_clips_and_suppresses_with_plus_one():
    proposals = [torch.tensor([[0.0, 0.0, 3.0, 3.0], [2.0, 0.0, 5.0, 3.0], [90.0, 40.0, 140.0, 60.0]])]
    logits = torch.tensor([[0.0, 4.0], [0.0, 3.0], [0.0, 2.0]])
    deltas = torch.zeros(3, 8)

    def detect(convention):
        processor = SGDetPostProcessor(0.01, 0.3, 300, False, 10, convention.make_box_coder((10.0, 10.0, 5.0, 5.0)),
                                       clip=convention.clip, batched_nms=convention.batched_nms)
        return processor(logits, deltas, proposals, [(50, 100)])[0]

    sgb = detect(SGB_CONVENTION)
    assert sgb.proposal_indices.tolist() == [0, 2]  # +1 IoU 1/3 > 0.3 suppresses proposal 1
    assert sgb.boxes.tolist() == [[0.0, 0.0, 3.0, 3.0], [90.0, 40.0, 99.0, 49.0]]  # clipped to W-1, H-1
    assert detect(TORCHVISION_CONVENTION).proposal_indices.tolist() == [0, 1, 2]


def _reference_detections(proposals: np.ndarray, logits: torch.Tensor, deltas: torch.Tensor,
                          image_size: tuple[int, int], detections_per_img: int) -> tuple[list, list, np.ndarray]:
    """SGB's box-head post-processing in loops (+1 decode with weights (10, 10, 5, 5), clip to W-1/H-1,
    score > 0.01, per-class +1 NMS at 0.3, NMS_FILTER_DUPLICATES, kth-value cut): (proposal indices,
    labels, boxes), ordered by proposal index."""
    height, width = image_size
    scores = torch.softmax(logits, dim=1).numpy()
    deltas = deltas.numpy().reshape(len(proposals), -1, 4)
    boxes = np.zeros_like(deltas)
    for p, (x1, y1, x2, y2) in enumerate(proposals):
        w, h = x2 - x1 + 1, y2 - y1 + 1
        for c, (dx, dy, dw, dh) in enumerate(deltas[p] / np.array([10.0, 10.0, 5.0, 5.0], dtype=np.float32)):
            cx, cy = dx * w + x1 + 0.5 * w, dy * h + y1 + 0.5 * h
            pw, ph = math.exp(min(dw, math.log(1000.0 / 16))) * w, math.exp(min(dh, math.log(1000.0 / 16))) * h
            box = [cx - 0.5 * pw, cy - 0.5 * ph, cx + 0.5 * pw - 1, cy + 0.5 * ph - 1]
            boxes[p, c] = [min(max(box[0], 0), width - 1), min(max(box[1], 0), height - 1),
                           min(max(box[2], 0), width - 1), min(max(box[3], 0), height - 1)]
    survivors = np.zeros_like(scores)
    for c in range(1, scores.shape[1]):
        candidates = np.nonzero(scores[:, c] > 0.01)[0]
        for kept in _loop_nms(boxes[candidates, c], scores[candidates, c], 0.3)[:300]:
            survivors[candidates[kept], c] = scores[candidates[kept], c]
    best, labels = survivors.max(axis=1), survivors.argmax(axis=1)
    indices = np.nonzero(best > 0)[0]
    if len(indices) > detections_per_img:
        threshold = np.sort(best[indices])[len(indices) - detections_per_img]
        indices = indices[best[indices] >= threshold]
    return indices.tolist(), labels[indices].tolist(), boxes[indices, labels[indices]]


def test_sgb_mode_sgdet_detections_equal_the_loop_reference(sgb_detector):
    detector = copy.deepcopy(sgb_detector)
    with torch.no_grad():  # regressions large enough to move boxes across the border and into each other
        detector.roi_heads.box_predictor.bbox_pred.weight.normal_(std=0.05)
        detector.roi_heads.box_predictor.cls_score.weight.normal_(std=0.05)
    images = random_images([(100, 150)], padded=(128, 160), seed=5)
    with torch.no_grad():
        features = detector.extract_features(images)
        detections = detector.detect(images, features)[0]
        proposals, _ = detector.rpn(images, features)
        outputs = detector.box_outputs(features, proposals, images.image_sizes)
    indices, labels, boxes = _reference_detections(proposals[0].numpy(), outputs.class_logits,
                                                   outputs.box_regression, (100, 150), 20)
    assert len(detections) == 20
    assert detections.proposal_indices.tolist() == indices
    assert detections.labels.tolist() == labels
    np.testing.assert_allclose(detections.boxes.numpy(), boxes, atol=1e-3)

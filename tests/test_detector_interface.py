"""The detector's interface for the relation head: shapes and contracts on random images."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from detector_testing import TINY_NUM_CLASSES, random_images, random_targets, tiny_config
from rebalance_hca.config import ConfigError
from rebalance_hca.modeling.detector import (CONV_BODIES, Detections, SceneGraphDetector, build_detector,
                                             freeze_detector)
from rebalance_hca.modeling.detector.backbone import build_resnet_fpn_backbone, resolve_conv_body
from rebalance_hca.utils.state_dict import StateDictMismatchError

SIZES = [(120, 150), (128, 100)]
PADDED = (128, 160)
FEATURE_CHANNELS = 32
HEAD_DIM = 64


@pytest.fixture(scope="module")
def detector() -> SceneGraphDetector:
    torch.manual_seed(0)
    return build_detector(tiny_config())


def test_feature_maps_are_p2_to_p6_with_fpn_strides(detector):
    features = detector.extract_features(random_images(SIZES, PADDED))
    assert list(features) == ["0", "1", "2", "3", "pool"]
    expected = {"0": (32, 40), "1": (16, 20), "2": (8, 10), "3": (4, 5), "pool": (2, 3)}
    for name, (height, width) in expected.items():
        assert features[name].shape == (2, FEATURE_CHANNELS, height, width)


def test_box_outputs_for_given_boxes(detector):
    images = random_images(SIZES, PADDED)
    features = detector.extract_features(images)
    boxes = [t["boxes"] for t in random_targets(SIZES, boxes_per_image=3)]
    boxes[1] = boxes[1][:2]
    outputs = detector.box_outputs(features, boxes, images.image_sizes)
    assert outputs.features.shape == (5, HEAD_DIM)
    assert outputs.class_logits.shape == (5, TINY_NUM_CLASSES)
    assert outputs.box_regression.shape == (5, 4 * TINY_NUM_CLASSES)
    assert torch.equal(detector.box_features(features, boxes, images.image_sizes), outputs.features)
    assert (outputs.features >= 0).all()  # fc7 is followed by a ReLU


def test_training_forward_returns_the_four_losses_and_they_backpropagate(detector):
    detector.train()
    losses = detector(random_images(SIZES, PADDED), random_targets(SIZES))
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert all(value.ndim == 0 and torch.isfinite(value) for value in losses.values())
    detector.zero_grad()
    sum(losses.values()).backward()
    assert detector.roi_heads.box_predictor.cls_score.weight.grad.abs().sum() > 0
    assert detector.backbone.body.layer1[0].conv1.weight.grad is None  # res2 frozen (FREEZE_CONV_BODY_AT 2)
    detector.eval()


def _check_detections(image_detections: Detections, image_size: tuple[int, int], limit: int) -> None:
    count = len(image_detections)
    assert 0 < count <= limit
    assert image_detections.boxes.shape == (count, 4)
    assert image_detections.class_logits.shape == (count, TINY_NUM_CLASSES)
    assert image_detections.boxes_per_cls.shape == (count, TINY_NUM_CLASSES, 4)
    assert image_detections.labels.min() >= 1 and image_detections.labels.max() < TINY_NUM_CLASSES
    height, width = image_size
    assert (image_detections.boxes[:, 0::2] <= width).all() and (image_detections.boxes[:, 1::2] <= height).all()
    assert (image_detections.boxes >= 0).all()
    picked = image_detections.boxes_per_cls[torch.arange(count), image_detections.labels]
    assert torch.equal(picked, image_detections.boxes)
    probabilities = image_detections.class_logits.softmax(-1)
    assert torch.allclose(probabilities[torch.arange(count), image_detections.labels], image_detections.scores)
    assert (image_detections.scores > 0.01).all()
    # NMS_FILTER_DUPLICATES (default True): one class per proposal
    assert image_detections.proposal_indices.unique().numel() == count


def test_eval_forward_gives_sgdet_detections(detector):
    images = random_images(SIZES, PADDED)
    with torch.no_grad():
        detections = detector(images)
    assert len(detections) == 2
    for image_detections, size in zip(detections, SIZES):
        _check_detections(image_detections, size, limit=20)
        assert image_detections.gt_labels is None and image_detections.masks is None


def test_detect_with_targets_adds_gt_boxes_and_matched_labels(detector):
    images = random_images(SIZES, PADDED)
    targets = random_targets(SIZES)
    features = detector.extract_features(images)
    detections = detector.detect(images, features, targets, add_gt_boxes=True)
    for image_detections, size in zip(detections, SIZES):
        _check_detections(image_detections, size, limit=20)
        assert image_detections.gt_labels.shape == (len(image_detections),)
        assert set(image_detections.gt_labels.tolist()) <= set(range(TINY_NUM_CLASSES))


def test_match_proposal_labels_uses_the_fg_iou_threshold(detector):
    target = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]]),
              "labels": torch.tensor([3, 5])}
    proposals = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],    # IoU 1 with GT 0
        [0.0, 0.0, 10.0, 20.0],    # IoU 0.5 with GT 0 -> matched (>= 0.5)
        [0.0, 0.0, 10.0, 25.0],    # IoU 0.4 -> 0
        [25.0, 25.0, 40.0, 40.0],  # IoU 225/400 = 0.5625 with GT 1
        [100.0, 100.0, 110.0, 110.0],
    ])
    assert detector.match_proposal_labels(proposals, target).tolist() == [3, 3, 0, 5, 0]


def test_detect_refuses_train_mode_and_add_gt_without_targets(detector):
    images = random_images(SIZES, PADDED)
    detector.train()
    with pytest.raises(RuntimeError, match="freeze_detector"):
        detector.detect(images)
    detector.eval()
    with pytest.raises(ValueError, match="needs targets"):
        detector.detect(images, add_gt_boxes=True)


def test_freeze_detector_stops_gradients_and_pins_eval_mode():
    detector = freeze_detector(build_detector(tiny_config()))
    assert not any(p.requires_grad for p in detector.parameters())
    wrapper = nn.ModuleDict({"detector": detector, "head": nn.Linear(2, 2)})
    wrapper.train()
    assert wrapper["head"].training
    assert not detector.training and not detector.rpn.training and not detector.roi_heads.training
    images = random_images(SIZES, PADDED)
    detections = detector.detect(images)
    assert len(detections) == 2 and not detections[0].scores.requires_grad


def test_anchors_use_the_configured_strides(detector):
    images = random_images([(96, 96)], (96, 96))
    features = list(detector.extract_features(images).values())
    anchors = detector.rpn.anchor_generator(images, features)[0]
    # P6 of a 96x96 input is 2x2 (ceil of 3/2): torchvision would infer stride 48, the config says 64
    num_ratios = 4
    p6_anchors = anchors[-4 * num_ratios:]
    centres_x = ((p6_anchors[:, 0] + p6_anchors[:, 2]) / 2).unique()
    assert centres_x.tolist() == [0.0, 64.0]
    assert anchors.shape == ((24 * 24 + 12 * 12 + 6 * 6 + 3 * 3 + 2 * 2) * num_ratios, 4)


def test_anchor_aspect_ratio_is_height_over_width(detector):
    cell = detector.rpn.anchor_generator.cell_anchors[0]  # size 32, ratios 0.232, 0.634, 1.285, 3.151
    widths, heights = cell[:, 2] - cell[:, 0], cell[:, 3] - cell[:, 1]
    assert (heights[-1] > widths[-1]) and (heights[0] < widths[0])


def test_mask_on_adds_a_mask_loss_and_mask_probabilities():
    detector = build_detector(tiny_config("MODEL.MASK_ON", "True", "MODEL.ROI_MASK_HEAD.CONV_LAYERS", "(16, 16)"))
    targets = random_targets(SIZES)
    for target, (height, width) in zip(targets, SIZES):
        masks = torch.zeros(len(target["boxes"]), height, width, dtype=torch.uint8)
        for mask, box in zip(masks, target["boxes"].long()):
            mask[box[1]:box[3], box[0]:box[2]] = 1
        target["masks"] = masks
    detector.train()
    losses = detector(random_images(SIZES, PADDED), targets)
    assert "loss_mask" in losses and torch.isfinite(losses["loss_mask"])
    detector.eval()
    with torch.no_grad():
        detections = detector(random_images(SIZES, PADDED))
    assert detections[0].masks.shape == (len(detections[0]), 1, 28, 28)


def test_unknown_conv_body_lists_the_valid_names():
    with pytest.raises(ValueError) as error:
        build_detector(tiny_config("MODEL.BACKBONE.CONV_BODY", "R-77-FPN"))
    message = str(error.value)
    assert "R-77-FPN" in message and all(name in message for name in CONV_BODIES)


def test_unsupported_settings_name_their_key():
    with pytest.raises(ValueError, match="MODEL.CLS_AGNOSTIC_BBOX_REG"):
        build_detector(tiny_config("MODEL.CLS_AGNOSTIC_BBOX_REG", "True"))
    with pytest.raises(ValueError, match="ANCHOR_SIZES"):
        build_detector(tiny_config("MODEL.RPN.ANCHOR_SIZES", "(32, 64)", "MODEL.RPN.ANCHOR_STRIDE", "(4, 8)"))
    with pytest.raises(ConfigError):
        tiny_config("MODEL.BACKBONE.NOT_A_KEY", "1")


def test_resnext_names_and_groups():
    body, groups, width = resolve_conv_body("R-101-FPN", 32, 8)  # SGB's way of asking for X-101-32x8d
    assert (body.depth, groups, width) == (101, 32, 8)
    assert resolve_conv_body("X-101-32-8-FPN", 1, 64)[1:] == (32, 8)
    with pytest.raises(ValueError, match="fixes"):
        resolve_conv_body("X-101-32-8-FPN", 32, 4)
    with pytest.raises(ValueError, match="basic blocks"):
        resolve_conv_body("R-18-FPN", 32, 8)


def test_stride_in_1x1_and_freeze_at():
    backbone = build_resnet_fpn_backbone("R-50-FPN", stride_in_1x1=True, out_channels=16, freeze_at=3)
    first = backbone.body.layer3[0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)
    frozen = {name.split(".")[0] for name, p in backbone.body.named_parameters() if not p.requires_grad}
    trainable = {name.split(".")[0] for name, p in backbone.body.named_parameters() if p.requires_grad}
    assert frozen == {"conv1", "layer1", "layer2"} and trainable == {"layer3", "layer4"}
    with pytest.raises(ValueError, match="FREEZE_CONV_BODY_AT"):
        build_resnet_fpn_backbone("R-18-FPN", freeze_at=6)


def test_backbone_weights_from_a_local_file(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    reference = resnet18()
    weights = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), weights)
    backbone = build_resnet_fpn_backbone("R-18-FPN", out_channels=16, weights_file=str(weights))
    assert torch.equal(backbone.body.layer2[0].conv1.weight, reference.layer2[0].conv1.weight)
    assert torch.equal(backbone.body.bn1.running_mean, reference.bn1.running_mean)

    bad = dict(reference.state_dict())
    bad["layer1.0.conv1.weight"] = torch.zeros(1, 1, 3, 3)
    del bad["layer4.1.conv2.weight"]
    bad["extra.weight"] = torch.zeros(1)
    torch.save(bad, weights)
    with pytest.raises(StateDictMismatchError) as error:
        build_resnet_fpn_backbone("R-18-FPN", out_channels=16, weights_file=str(weights))
    message = str(error.value)
    assert str(weights) in message
    assert "layer1.0.conv1.weight: file [1, 1, 3, 3] vs model [64, 64, 3, 3]" in message
    assert "layer4.1.conv2.weight" in message and "extra.weight" in message
    with pytest.raises(FileNotFoundError, match="BACKBONE_WEIGHTS"):
        build_resnet_fpn_backbone("R-18-FPN", weights_file=str(tmp_path / "missing.pth"))


def test_vg150_config_builds_sgb_x101_detector():
    import os

    from rebalance_hca.config import load_config

    config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "configs", "vg150", "e2e_relation_detector_X_101_32_8_FPN_1x.yaml")
    detector = build_detector(load_config(config, ["MODEL.DEVICE", "cpu"]))
    body = detector.backbone.body
    assert body.layer2[0].conv2.groups == 32 and body.layer2[0].conv2.stride == (2, 2)  # STRIDE_IN_1X1 False
    assert len(body.layer3) == 23
    assert not any(p.requires_grad for p in body.layer1.parameters()) and body.layer2[0].conv1.weight.requires_grad
    assert detector.roi_heads.box_head.fc6.in_features == 256 * 7 * 7
    assert detector.roi_heads.box_head.fc7.out_features == 4096
    assert detector.num_classes == 151
    assert detector.rpn.anchor_generator.num_anchors_per_location() == [4] * 5
    assert detector.rpn._pre_nms_top_n == {"training": 12000, "testing": 6000}
    assert detector.rpn._post_nms_top_n == {"training": 2000, "testing": 2000}
    postprocessor = detector.roi_heads.postprocessor
    assert (postprocessor.detections_per_img, postprocessor.filter_duplicates) == (256, False)
    assert (postprocessor.score_thresh, postprocessor.nms_thresh, postprocessor.post_nms_per_cls_topn) == (0.01, 0.3, 300)
    assert detector.add_gt_boxes_in_train is False
    assert detector.roi_heads.box_coder.weights == (10.0, 10.0, 5.0, 5.0)

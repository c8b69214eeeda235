"""Importing SGB checkpoints (docs/reference.md#sgb-checkpoints):
recognition, mapping, eps, refusals, load paths, the tool."""
from __future__ import annotations

import copy
import logging
import re

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

from rebalance_hca.engine.checkpoint import Checkpointer
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.detector import build_detector
from rebalance_hca.modeling.sgb_checkpoint import (FROZEN_BATCH_NORM_EPS, SGBCheckpointError, SGBStateMismatchError,
                                                   is_sgb_state, ours_to_sgb, sgb_to_ours)
from rebalance_hca.modeling.weights import checkpoint_box_convention, load_model_weights
from sgb_testing import (RELATION_KEYS, sgb_detector_state, sgb_name, with_relation_head,
                         write_sgb_checkpoint)
from detector_testing import TINY_DETECTOR_OPTS, random_images, tiny_config
from relation_testing import tiny_relation_config
from tool_loading import load_tool


@pytest.fixture(autouse=True)
def project_logs_reach_caplog(monkeypatch):
    monkeypatch.setattr(logging.getLogger("rebalance_hca"), "propagate", True)


@pytest.fixture(scope="module")
def tiny_detector():
    torch.manual_seed(0)
    return build_detector(tiny_config("MODEL.BOX_CONVENTION", "sgb"))


@pytest.fixture(scope="module")
def sgb_state(tiny_detector):
    return sgb_detector_state(tiny_detector)


def fresh(detector):
    """A detector of the same config with other (random) weights."""
    other = copy.deepcopy(detector)
    for tensor in other.state_dict().values():
        if tensor.is_floating_point():
            tensor.add_(1.0)
    return other


def test_key_mapping_round_trips_and_matches_the_spec(tiny_detector):
    names = list(tiny_detector.state_dict())
    for name in names:
        assert sgb_to_ours(sgb_name(name)) == name
        assert ours_to_sgb(name) == sgb_name(name)
    sgb_names = {sgb_name(name) for name in names}
    for expected in ("backbone.body.stem.conv1.weight", "backbone.body.stem.bn1.running_var",
                     "backbone.body.layer2.0.downsample.1.weight", "backbone.fpn.fpn_inner1.weight",
                     "backbone.fpn.fpn_layer4.bias", "rpn.head.conv.weight", "rpn.head.bbox_pred.weight",
                     "roi_heads.box.feature_extractor.fc6.weight", "roi_heads.box.predictor.cls_score.bias",
                     "roi_heads.box.predictor.bbox_pred.weight"):
        assert expected in sgb_names
    assert not is_sgb_state(tiny_detector.state_dict())
    assert is_sgb_state({f"module.{name}": None for name in sgb_names})


@pytest.mark.parametrize("legacy, module_prefix, half_buffers, relation", [
    (False, False, False, False), (True, True, True, False), (True, False, False, True), (False, True, True, True)])
def test_sgb_file_loads_as_it_is(tmp_path, caplog, tiny_detector, legacy, module_prefix, half_buffers, relation):
    state = sgb_detector_state(tiny_detector, half_buffers=half_buffers, module_prefix=module_prefix)
    if relation:
        state = with_relation_head(state)
    path = write_sgb_checkpoint(str(tmp_path / "model_final.pth"), state, legacy=legacy)
    detector = fresh(tiny_detector)
    with caplog.at_level(logging.INFO, logger="rebalance_hca"):
        load_model_weights(detector, path, key="MODEL.PRETRAINED_DETECTOR_CKPT")
    prefix = "module." if module_prefix else ""
    loaded = detector.state_dict()
    assert len(loaded) == len(tiny_detector.state_dict())
    for name, tensor in loaded.items():
        original = state[prefix + sgb_name(name)].float()
        assert tensor.dtype == torch.float32
        if name.startswith("backbone.body.") and name.endswith("running_var"):
            assert torch.equal(tensor + FROZEN_BATCH_NORM_EPS, original), name
        else:
            assert torch.equal(tensor, original), name
    log = caplog.text
    assert "SGB relation-model checkpoint" in log if relation else "SGB detector checkpoint" in log
    assert f"{len(loaded)} tensors mapped" in log
    assert "5 levels of rpn.anchor_generator.cell_anchors checked" in log
    assert (f"{len(RELATION_KEYS)} roi_heads.relation.* keys ignored" in log) == relation
    assert ("'module.' prefix removed" in log) == module_prefix
    assert ("float16 tensors cast to float32" in log) == half_buffers


def test_features_equal_sgb_frozen_batch_norm_bit_for_bit(tmp_path, tiny_detector, sgb_state):
    """FPN P2-P6 and RPN head outputs of the import equal those of the same weights under SGB's
    FrozenBatchNorm (no eps: torchvision's with eps 0 computes w * rsqrt(var) exactly like it)."""
    detector = fresh(tiny_detector)
    load_model_weights(detector, write_sgb_checkpoint(str(tmp_path / "d.pth"), sgb_state))
    reference = fresh(tiny_detector)
    reference.load_state_dict({name: sgb_state[sgb_name(name)] for name in reference.state_dict()})
    for module in reference.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = 0.0
    images = random_images([(128, 160)])
    with torch.no_grad():
        ours, theirs = detector.extract_features(images), reference.extract_features(images)
        for name in ours:
            assert torch.equal(ours[name], theirs[name]), name
        ours_rpn, theirs_rpn = detector.rpn.head(list(ours.values())), reference.rpn.head(list(theirs.values()))
    for ours_level, theirs_level in zip([*ours_rpn[0], *ours_rpn[1]], [*theirs_rpn[0], *theirs_rpn[1]]):
        assert torch.equal(ours_level, theirs_level)


def test_relation_checkpoint_imports_to_the_detector_checkpoint_state(tmp_path, tiny_detector, sgb_state):
    detector_file = write_sgb_checkpoint(str(tmp_path / "detector.pth"), sgb_state)
    relation_file = write_sgb_checkpoint(str(tmp_path / "relation.pth"), with_relation_head(sgb_state), legacy=True)
    from_detector, from_relation = fresh(tiny_detector), fresh(tiny_detector)
    load_model_weights(from_detector, detector_file)
    load_model_weights(from_relation, relation_file)
    for (name, a), (_, b) in zip(from_detector.state_dict().items(), from_relation.state_dict().items()):
        assert torch.equal(a, b), name


def _without(state, prefix):
    return {name: tensor for name, tensor in state.items() if not name.startswith(prefix)}


def _refusal_cases(state):
    c4 = {**_without(state, "backbone.fpn."),
          "roi_heads.box.feature_extractor.head.layer4.0.conv1.weight": torch.zeros(4, 4, 1, 1)}
    vgg = {**_without(state, "backbone.body."), "backbone.body.conv_body.0.weight": torch.zeros(64, 3, 3, 3)}
    group_norm = {**_without(state, "backbone.fpn.fpn_inner1."),
                  "backbone.fpn.fpn_inner1.0.weight": state["backbone.fpn.fpn_inner1.weight"],
                  "backbone.fpn.fpn_inner1.1.weight": torch.ones(32)}
    agnostic = {**state, "roi_heads.box.predictor.bbox_pred.weight": torch.zeros(8, 64),
                "roi_heads.box.predictor.bbox_pred.bias": torch.zeros(8)}
    shifted = {**state, "rpn.anchor_generator.cell_anchors.0": state["rpn.anchor_generator.cell_anchors.0"] - 2}
    return {
        "attribute": ({**state, "roi_heads.attribute.feature_extractor.fc6.weight": torch.zeros(4, 4)},
                      "roi_heads.attribute.feature_extractor.fc6.weight: SGB's attribute head"),
        "c4": (c4, "roi_heads.box.feature_extractor.head.layer4.0.conv1.weight: a C4 detector"),
        "vgg": (vgg, "backbone.body.conv_body.0.weight: a VGG-16 detector"),
        "group_norm": (group_norm, "backbone.fpn.fpn_inner1.0.weight: a GroupNorm FPN (MODEL.FPN.USE_GN True)"),
        "class_agnostic": (agnostic, "class-agnostic box regression (MODEL.CLS_AGNOSTIC_BBOX_REG True)"),
        "mask_without_mask_on": ({**state, "roi_heads.mask.feature_extractor.mask_fcn1.weight": torch.zeros(4)},
                                 "a Mask R-CNN head; set MODEL.MASK_ON True"),
        "anchors": (shifted, "rpn.anchor_generator.cell_anchors.0: file [[-32.0, -8.0, 31.0, 7.0]"),
    }


@pytest.mark.parametrize("case", ["attribute", "c4", "vgg", "group_norm", "class_agnostic", "mask_without_mask_on",
                                  "anchors"])
def test_refused_variants_name_the_key_and_the_reason(tmp_path, tiny_detector, sgb_state, case):
    state, expected = _refusal_cases(sgb_state)[case]
    path = write_sgb_checkpoint(str(tmp_path / "sgb.pth"), state)
    with pytest.raises(SGBCheckpointError, match=re.escape(expected)) as error:
        load_model_weights(fresh(tiny_detector), path, key="MODEL.PRETRAINED_DETECTOR_CKPT")
    assert f"MODEL.PRETRAINED_DETECTOR_CKPT {path}" in str(error.value)


def test_mask_head_is_mapped_with_mask_on(tmp_path):
    config = ("MODEL.MASK_ON", "True", "MODEL.ROI_MASK_HEAD.CONV_LAYERS", "(16, 16)")
    source = build_detector(tiny_config(*config))
    state = sgb_detector_state(source)
    assert {"roi_heads.mask.feature_extractor.mask_fcn2.weight", "roi_heads.mask.predictor.conv5_mask.weight",
            "roi_heads.mask.predictor.mask_fcn_logits.bias"} <= set(state)
    detector = fresh(source)
    load_model_weights(detector, write_sgb_checkpoint(str(tmp_path / "mask.pth"), state))
    for name, tensor in detector.state_dict().items():
        if name.startswith("roi_heads.mask"):
            assert torch.equal(tensor, state[sgb_name(name)]), name


def test_other_class_count_is_refused_naming_both_numbers(tmp_path):
    gqa_like = build_detector(tiny_config("MODEL.ROI_BOX_HEAD.NUM_CLASSES", "9"))
    path = write_sgb_checkpoint(str(tmp_path / "sgb.pth"), sgb_detector_state(gqa_like))
    with pytest.raises(SGBCheckpointError, match="the file has 9 classes, MODEL.ROI_BOX_HEAD.NUM_CLASSES is 6"):
        load_model_weights(build_detector(tiny_config()), path)


def test_mismatching_architecture_lists_sgb_keys_and_likely_config_keys(tmp_path):
    wider = build_detector(tiny_config("MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM", "48", "MODEL.BACKBONE.CONV_BODY", "R-50-FPN"))
    path = write_sgb_checkpoint(str(tmp_path / "sgb.pth"), sgb_detector_state(wider))
    with pytest.raises(SGBStateMismatchError) as error:
        load_model_weights(build_detector(tiny_config()), path)
    message = str(error.value)
    assert "roi_heads.box.feature_extractor.fc6.weight: file [48, 1568] vs model [64, 1568]" in message
    assert "backbone.body.layer3.5.conv1.weight" in message
    assert "box head width: file 48, config 64 (MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM)" in message
    assert "blocks per stage: file (3, 4, 6, 3), config (2, 2, 2, 2)" in message
    assert "the file's ResNet uses bottleneck blocks" in message


def test_sgb_file_into_a_whole_model_is_refused(tmp_path, tiny_detector, sgb_state):
    path = write_sgb_checkpoint(str(tmp_path / "sgb.pth"), sgb_state)
    wrapper = torch.nn.ModuleDict({"detector": fresh(tiny_detector)})
    with pytest.raises(SGBCheckpointError, match="MODEL.PRETRAINED_DETECTOR_CKPT"):
        load_model_weights(wrapper, path, key="MODEL.WEIGHT")


def test_box_convention_follows_the_checkpoint_unless_configured(tmp_path, caplog, sgb_state):
    path = write_sgb_checkpoint(str(tmp_path / "sgb.pth"), sgb_state, legacy=True)
    assert checkpoint_box_convention(path) == "sgb"
    with caplog.at_level(logging.INFO, logger="rebalance_hca"):
        auto = build_detector(tiny_config("MODEL.PRETRAINED_DETECTOR_CKPT", path))
    assert auto.box_convention == "sgb"
    assert 'MODEL.BOX_CONVENTION "" (auto)' in caplog.text
    assert build_detector(tiny_config("MODEL.WEIGHT", path)).box_convention == "sgb"
    assert build_detector(tiny_config("MODEL.PRETRAINED_DETECTOR_CKPT", path, "MODEL.BOX_CONVENTION",
                                      "torchvision")).box_convention == "torchvision"
    assert build_detector(tiny_config()).box_convention == "torchvision"
    with caplog.at_level(logging.WARNING, logger="rebalance_hca"):
        build_detector(tiny_config("MODEL.PRETRAINED_DETECTOR_CKPT", path, "INPUT.TO_BGR255", "False"))
    assert "this config has INPUT.TO_BGR255 False" in caplog.text
    with pytest.raises(ValueError, match="MODEL.BOX_CONVENTION 'caffe' is unknown"):
        build_detector(tiny_config("MODEL.BOX_CONVENTION", "caffe"))


def test_convert_tool_writes_our_format(tmp_path, tiny_detector, sgb_state):
    tool = load_tool("convert_sgb_checkpoint")
    source = write_sgb_checkpoint(str(tmp_path / "sgb.pth"), sgb_detector_state(tiny_detector, module_prefix=True),
                                  legacy=True)
    output = str(tmp_path / "ours.pth")
    opts = TINY_DETECTOR_OPTS
    tool.main(["--input", source, "--output", output, *opts])
    converted = torch.load(output, weights_only=True)
    assert converted["box_convention"] == "sgb"
    direct = fresh(tiny_detector)
    load_model_weights(direct, source)
    for name, tensor in direct.state_dict().items():
        assert torch.equal(converted["model"][name], tensor), name
    detector = build_detector(tiny_config("MODEL.WEIGHT", output))
    assert detector.box_convention == "sgb"
    with pytest.raises(SystemExit) as exit_info:
        tool.run_tool(lambda: tool.main(["--input", output, "--output", str(tmp_path / "again.pth"), *opts]))
    assert exit_info.value.code == 2


def test_stage1_starts_from_an_sgb_detector_with_one_override(tiny_synthvg, tmp_path):
    """MODEL.PRETRAINED_DETECTOR_CKPT = SGB's file: the detector is imported (sgb convention chosen from
    the file) and the relation head's box and union extractors start from its fc6/fc7."""
    cfg = tiny_relation_config(tiny_synthvg, str(tmp_path / "out"), "sgcls")
    source = build_detector(cfg)
    state = sgb_detector_state(source, cell_anchors=source.rpn.anchor_generator.inclusive_cell_anchors())
    torch.manual_seed(1)
    with torch.no_grad():
        for name in ("roi_heads.box.feature_extractor.fc6.weight", "roi_heads.box.feature_extractor.fc7.weight"):
            state[name] = torch.randn_like(state[name])
    path = write_sgb_checkpoint(str(tmp_path / "model_final.pth"), with_relation_head(state), legacy=True)
    model = build_model(tiny_relation_config(tiny_synthvg, str(tmp_path / "out"), "sgcls",
                                             "MODEL.PRETRAINED_DETECTOR_CKPT", path))
    assert model.detector.box_convention == "sgb"
    extractors = [model.relation_head.box_features.box_head, model.relation_head.union_features.box_head]
    for layer in ("fc6", "fc7"):
        for part in ("weight", "bias"):
            imported = state[f"roi_heads.box.feature_extractor.{layer}.{part}"]
            assert torch.equal(getattr(model.detector.roi_heads.box_head, layer).state_dict()[part], imported)
            for extractor in extractors:
                assert torch.equal(getattr(extractor, layer).state_dict()[part], imported)


def test_checkpoints_record_the_box_convention_for_the_next_run(tmp_path, tiny_detector):
    """A model made with "sgb" saves it; used later as MODEL.PRETRAINED_DETECTOR_CKPT (or the stage-1 model,
    MODEL.PRETRAINED_MODEL_CKPT) it brings the convention along, and the file loaded last wins."""
    sgb_file = Checkpointer(tiny_detector, save_dir=str(tmp_path / "sgb")).save("model_final", 10)
    plain_file = Checkpointer(build_detector(tiny_config()), save_dir=str(tmp_path / "plain")).save("model_final", 10)
    assert checkpoint_box_convention(sgb_file) == "sgb"
    assert checkpoint_box_convention(plain_file) == "torchvision"
    assert build_detector(tiny_config("MODEL.PRETRAINED_DETECTOR_CKPT", sgb_file)).box_convention == "sgb"
    assert build_detector(tiny_config("MODEL.PRETRAINED_DETECTOR_CKPT", sgb_file, "MODEL.WEIGHT",
                                      plain_file)).box_convention == "torchvision"
    assert build_detector(tiny_config("MODEL.PRETRAINED_DETECTOR_CKPT", plain_file, "MODEL.PRETRAINED_MODEL_CKPT",
                                      sgb_file)).box_convention == "sgb"

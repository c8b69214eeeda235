"""Importing SGB relation models whole (docs/checkpoints.md): the feature extractors and each predictor
through its ``from_sgb_state``, the predictor check, missing keys, the test tool and the conversion tool."""
from __future__ import annotations

import logging
import re

import pytest
import torch

from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.sgb_checkpoint import SGBCheckpointError, SGBStateMismatchError, sgb_predictor_of
from rebalance_hca.modeling.weights import load_model_weights
from baseline_testing import first_batch
from relation_testing import (SYNTHETIC_IMP_CONFIG, SYNTHETIC_MOTIFS_CONFIG, TINY_MODEL_OPTS, mode_opts,
                              tiny_relation_config, tiny_synthetic_config)
from sgb_testing import sgb_attention_cell, sgb_detector_state, sgb_relation_state, write_sgb_checkpoint
from tool_loading import load_tool


@pytest.fixture(autouse=True)
def project_logs_reach_caplog(monkeypatch):
    monkeypatch.setattr(logging.getLogger("rebalance_hca"), "propagate", True)


def _renamed(state: dict, renames: list[tuple[str, str]]) -> dict:
    """Our predictor state with the first matching (our prefix, SGB prefix) rename applied to each key."""
    sgb = {}
    for key, value in state.items():
        prefix = next((pair for pair in renames if key.startswith(pair[0])), ("", ""))
        sgb[prefix[1] + key[len(prefix[0]):]] = value.clone()
    return sgb


def motifs_to_sgb(state: dict) -> dict:
    return _renamed(state, [("context.", "context_layer."), ("general_classifier.", "")])


def imp_to_sgb(state: dict) -> dict:
    return _renamed(state, [("general_classifier.", "context_layer.rel_fc."), ("context.", "context_layer.")])


_HYBRID_CELLS = {"visual_self": "SA_Cell_vis.SA", "text_self": "SA_Cell_txt.SA", "visual_cross": "CA_Cell_vis.CA",
                 "text_cross": "CA_Cell_txt.CA"}


def attention_to_sgb(state: dict) -> dict:
    """SGB's TransformerPredictor / RB's TransformerTransferPredictor names (RB's ``*_clean`` classifier)."""
    sgb, cells = {}, set()
    for key in state:
        match = re.match(r"^(context\.(?:context_obj|context_edge|encoder|decoder)\.layers\.\d+\.(?:\w+_(?:self|cross)\.)?)"
                         r"(attention|feed_forward)\.", key)
        if match:
            cells.add(match[1])
    for cell in cells:
        match = re.match(r"^context\.(\w+)\.layers\.(\d+)\.(?:(\w+)\.)?$", cell)
        stack, layer, kind = match[1], match[2], match[3]
        if kind is None:
            sgb_cell = f"context_layer.{stack}.layer_stack.{layer}."
        else:
            name = _HYBRID_CELLS[kind]
            sgb_stack = {"encoder": "context_obj", "decoder": "context_edge"}[stack]
            sgb_cell = (f"context_layer.{sgb_stack}.cross_module.{layer}.{name[:-3]}.{name[-2:]}_transformer_encoder."
                        "transformer_layer.")
        sgb.update(sgb_attention_cell(state, cell, sgb_cell))
    rest = {key: value for key, value in state.items() if not any(key.startswith(cell) for cell in cells)}
    renamed = _renamed(rest, [("context.", "context_layer."), ("general_classifier.", "")])
    for key in [key for key in renamed if key.startswith("clean_classifier.")]:
        part, rest_of_key = key[len("clean_classifier."):].split(".", 1)
        renamed[f"{part}_clean.{rest_of_key}"] = renamed.pop(key)
    return {**sgb, **renamed}


def _perturbed(model):
    """``model`` with every floating tensor moved off its initial value (so that no entry passes by chance)."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.01 * torch.randn(tensor.shape, generator=generator))
    return model


CASES = {
    "MotifPredictor": (lambda data, out: tiny_synthetic_config(SYNTHETIC_MOTIFS_CONFIG, data, out, "sgcls"),
                       motifs_to_sgb),
    "IMPPredictor": (lambda data, out: tiny_synthetic_config(SYNTHETIC_IMP_CONFIG, data, out, "sgcls"), imp_to_sgb),
    "TransformerPredictor": (lambda data, out: tiny_relation_config(
        data, out, "sgcls", "MODEL.ROI_RELATION_HEAD.PREDICTOR", "TransformerPredictor"), attention_to_sgb),
    "TransformerTransferPredictor": (lambda data, out: tiny_relation_config(
        data, out, "sgcls", "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True"), attention_to_sgb),
}


def _sgb_file(cfg, to_sgb, path: str):
    """(our model with perturbed weights, SGB's file of those weights, its SGB state)."""
    torch.manual_seed(0)
    model = _perturbed(build_model(cfg)).eval()
    predictor = {key: value for key, value in model.state_dict().items() if key.startswith("relation_head.predictor.")}
    predictor = to_sgb({key[len("relation_head.predictor."):]: value for key, value in predictor.items()})
    state = sgb_relation_state(model, predictor)
    return model, write_sgb_checkpoint(path, {f"module.{key}": value for key, value in state.items()}, legacy=True), state


@pytest.mark.parametrize("predictor", list(CASES))
def test_an_sgb_relation_model_loads_whole_and_computes_ours(tiny_synthvg, tmp_path, caplog, predictor):
    make_config, to_sgb = CASES[predictor]
    cfg = make_config(tiny_synthvg, str(tmp_path / "out"))
    source, path, state = _sgb_file(cfg, to_sgb, str(tmp_path / "model_final.pth"))
    assert sgb_predictor_of(key.split("predictor.", 1)[1] for key in state if ".predictor." in key)[0] == predictor
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    with caplog.at_level(logging.INFO, logger="rebalance_hca"):
        load_model_weights(model, path, key="MODEL.WEIGHT")
    assert f"an SGB relation model with a {predictor}" in caplog.text
    detector_only = write_sgb_checkpoint(str(tmp_path / "detector.pth"), {
        key: value for key, value in state.items() if not key.startswith("roi_heads.relation.")})
    load_model_weights(source.detector, detector_only)
    expected = source.state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys()
    assert [key for key in expected if not torch.equal(loaded[key], expected[key])] == []
    images, targets = first_batch(cfg, "test")
    with torch.no_grad():
        ours, theirs = model(images, targets), source(images, targets)
    for mine, reference in zip(ours, theirs):
        assert torch.equal(mine["rel_scores"], reference["rel_scores"])


def test_a_predictor_other_than_the_configured_one_is_refused_naming_both(tiny_synthvg, tmp_path):
    _, path, _ = _sgb_file(CASES["IMPPredictor"][0](tiny_synthvg, str(tmp_path / "imp")), imp_to_sgb,
                           str(tmp_path / "imp.pth"))
    model = build_model(CASES["MotifPredictor"][0](tiny_synthvg, str(tmp_path / "motifs")))
    with pytest.raises(SGBCheckpointError, match=r"holds SGB's IMPPredictor \(recognised by "
                                                 r"roi_heads\.relation\.predictor\.context_layer\.node_gru\..*\), but "
                                                 r"MODEL\.ROI_RELATION_HEAD\.PREDICTOR is 'MotifPredictor'"):
        load_model_weights(model, path, key="MODEL.WEIGHT")


def test_missing_and_unknown_keys_are_refused_naming_them(tiny_synthvg, tmp_path):
    cfg = CASES["IMPPredictor"][0](tiny_synthvg, str(tmp_path / "out"))
    _, _, state = _sgb_file(cfg, imp_to_sgb, str(tmp_path / "whole.pth"))
    model = build_model(cfg)
    without_predictor_key = {k: v for k, v in state.items() if k != "roi_heads.relation.predictor.context_layer.obj_fc.weight"}
    path = write_sgb_checkpoint(str(tmp_path / "a.pth"), without_predictor_key)
    with pytest.raises(SGBStateMismatchError, match=r"relation_head\.predictor\.context\.obj_fc\.weight"):
        load_model_weights(model, path, key="MODEL.WEIGHT")
    without_feature_key = {k: v for k, v in state.items()
                           if k != "roi_heads.relation.union_feature_extractor.rect_conv.0.weight"}
    path = write_sgb_checkpoint(str(tmp_path / "b.pth"), without_feature_key)
    with pytest.raises(SGBStateMismatchError, match=r"relation_head\.union_features\.rect_conv\.0\.weight"):
        load_model_weights(model, path, key="MODEL.WEIGHT")
    unknown = {**state, "roi_heads.relation.predictor.extra_gate.weight": torch.zeros(2)}
    path = write_sgb_checkpoint(str(tmp_path / "c.pth"), unknown)
    with pytest.raises(SGBCheckpointError, match=r"IMPPredictor state .*no counterpart in ours: extra_gate\.weight"):
        load_model_weights(model, path, key="MODEL.WEIGHT")
    unknown_in_context = {**state, "roi_heads.relation.predictor.context_layer.extra_gate.weight": torch.zeros(2)}
    path = write_sgb_checkpoint(str(tmp_path / "c2.pth"), unknown_in_context)
    with pytest.raises(SGBStateMismatchError, match=r"relation_head\.predictor\.context\.extra_gate\.weight"):
        load_model_weights(model, path, key="MODEL.WEIGHT")
    attribute = {**state, "roi_heads.relation.att_feature_extractor.fc6.weight": torch.zeros(2)}
    path = write_sgb_checkpoint(str(tmp_path / "d.pth"), attribute)
    with pytest.raises(SGBCheckpointError, match="attribute head"):
        load_model_weights(model, path, key="MODEL.WEIGHT")
    detector_only = write_sgb_checkpoint(str(tmp_path / "e.pth"), sgb_detector_state(
        model.detector, cell_anchors=model.detector.rpn.anchor_generator.inclusive_cell_anchors()))
    with pytest.raises(SGBCheckpointError, match="an SGB detector checkpoint, not a relation model"):
        load_model_weights(model, detector_only, key="MODEL.WEIGHT")


@pytest.mark.slow
def test_the_tools_test_and_convert_an_sgb_relation_model(tiny_synthvg, tmp_path):
    cfg = CASES["IMPPredictor"][0](tiny_synthvg, str(tmp_path / "out"))
    _, path, _ = _sgb_file(cfg, imp_to_sgb, str(tmp_path / "model_final.pth"))
    args = ["--config-file", SYNTHETIC_IMP_CONFIG, *TINY_MODEL_OPTS, *mode_opts("sgcls"), "DATASETS.DATA_DIR",
            tiny_synthvg, "GLOVE_DIR", cfg.GLOVE_DIR, "OUTPUT_DIR", cfg.OUTPUT_DIR]
    evaluation = load_tool("relation_test_net").main([*args, "MODEL.WEIGHT", path])
    assert 0.0 <= evaluation["sgg"]["R@50"] <= 1.0
    converted = load_tool("convert_sgb_checkpoint").main([*args, "--input", path, "--output",
                                                           str(tmp_path / "ours.pth")])
    data = torch.load(converted, weights_only=True)
    assert data["box_convention"] == "sgb"
    direct = build_model(cfg)
    load_model_weights(direct, path)
    assert data["model"].keys() == direct.state_dict().keys()
    assert all(torch.equal(data["model"][key], value) for key, value in direct.state_dict().items())


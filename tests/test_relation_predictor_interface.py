"""The predictor interface: a new predictor is one class plus a registry entry; the head gives it raw boxes and
image sizes and merges its extra losses; stage 2 asks it how to start and what to train; the ReBalance
recipe works on it; option keys that do not apply to the chosen predictor are refused. Plus pins of what
HCA / Transformer must keep (checkpoint key names, random initialisation order)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from relation_testing import SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, tiny_relation_config
from rebalance_hca.config import load_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.engine.checkpoint import Checkpointer
from rebalance_hca.engine.stages import freeze_for_stage2, load_stage1_model
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.relation_head.classifier import PairClassifier, xavier_linear
from rebalance_hca.modeling.relation_head.context import (AttentionOptions, ContextInputs, HybridCoAttentionContext,
                                                          ObjectContext)
from rebalance_hca.modeling.relation_head.object_labels import one_hot_logits
from rebalance_hca.modeling.relation_head.predictors import (PredictorOutput, PredictorParts, RebalancedPredictor,
                                                             build_predictor, build_rebalance_recipe, registry)
from rebalance_hca.modeling.relation_head.predictors.rebalance import REBALANCE_KEYS

NUM_PREDICATES = 22


class UnionLinearPredictor(RebalancedPredictor):
    """A minimal trained predictor: GT labels, logits = classifier head (one Linear) on the union features.
    It records the ContextInputs it was given and returns one extra loss."""

    def __init__(self, num_classes: int, union_channels: int, recipe) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))
        self.add_classifiers(lambda: xavier_linear(union_channels, NUM_PREDICATES), recipe)
        self.seen_inputs: list[ContextInputs] = []

    def object_context(self, inputs: ContextInputs) -> ObjectContext:
        self.seen_inputs.append(inputs)
        logits = one_hot_logits(inputs.labels, self.num_classes)
        return ObjectContext(logits, inputs.labels, logits.new_zeros(len(inputs.labels), 0))

    def relation_logits(self, context: ObjectContext, pairs: Tensor, union_features: Tensor) -> Tensor:
        return self.classify(union_features * self.scale)

    def training_outputs(self, context, pairs, union_features, pair_labels) -> PredictorOutput:
        logits = self.relation_logits(context, pairs, union_features)
        return PredictorOutput(logits, {"loss_toy": (pair_labels > 0).float().mean() * self.scale})


@pytest.fixture
def toy_registered(monkeypatch):
    """Register ``UnionLinearPredictor`` as "UnionLinearPredictor" for one test (the registry is restored)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    sizes_of_the_hca_config = [key for key in registry.PREDICTOR_OPTION_KEYS if key not in REBALANCE_KEYS]

    @registry.register_predictor("UnionLinearPredictor", reads=REBALANCE_KEYS, ignores=sizes_of_the_hca_config)
    def build(cfg, parts: PredictorParts) -> UnionLinearPredictor:
        return UnionLinearPredictor(len(parts.object_vectors), parts.union_channels, build_rebalance_recipe(cfg, parts))

    return "UnionLinearPredictor"


def _config(tiny_synthvg, tmp_path, *extra, mode="predcls"):
    return tiny_relation_config(tiny_synthvg, str(tmp_path / "out"), mode, *extra)


def _batch(cfg, split="train"):
    images, targets, _ = next(iter(make_data_loader(cfg, split)))
    return images, targets


def _save_confusion(tmp_path) -> str:
    path = str(tmp_path / "confusion.npy")
    np.save(path, np.random.default_rng(0).integers(0, 20, (NUM_PREDICATES, NUM_PREDICATES)).astype(np.float32))
    return path


def test_a_registered_predictor_gets_boxes_and_sizes_and_its_losses_are_merged(tiny_synthvg, tmp_path,
                                                                                toy_registered):
    cfg = _config(tiny_synthvg, tmp_path, "MODEL.ROI_RELATION_HEAD.PREDICTOR", toy_registered)
    model = build_model(cfg).train()
    assert model.requires_training
    images, targets = _batch(cfg)
    losses = model(images, targets)
    assert set(losses) == {"loss_rel", "loss_refine_obj", "loss_toy"}
    assert 0 < float(losses["loss_toy"].detach()) <= 1
    inputs = model.relation_head.predictor.seen_inputs[-1]
    assert torch.equal(inputs.boxes, torch.cat([target["boxes"] for target in targets]))
    assert inputs.image_sizes == [tuple(size) for size in images.image_sizes]
    sum(losses.values()).backward()
    assert model.relation_head.predictor.scale.grad is not None


def test_an_extra_loss_may_not_take_a_head_loss_name(tiny_synthvg, tmp_path, toy_registered, monkeypatch):
    cfg = _config(tiny_synthvg, tmp_path, "MODEL.ROI_RELATION_HEAD.PREDICTOR", toy_registered)
    model = build_model(cfg).train()
    predictor = model.relation_head.predictor
    monkeypatch.setattr(predictor, "training_outputs", lambda context, pairs, union, labels: PredictorOutput(
        predictor.relation_logits(context, pairs, union), {"loss_rel": union.sum()}))
    with pytest.raises(ValueError, match=r"UnionLinearPredictor returns extra losses named \['loss_rel'\]"):
        model(*_batch(cfg))


def test_the_recipe_on_a_new_predictor_stage2_asks_the_predictor(tiny_synthvg, tmp_path, toy_registered):
    confusion = _save_confusion(tmp_path)
    common = ["MODEL.ROI_RELATION_HEAD.PREDICTOR", toy_registered]
    torch.manual_seed(0)
    stage1 = build_model(_config(tiny_synthvg, tmp_path, *common))
    path = Checkpointer(stage1, save_dir=str(tmp_path / "stage1")).save("model_final", 1)
    cfg = _config(tiny_synthvg, tmp_path, *common, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True",
                  "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True",
                  "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX", confusion)
    model = build_model(cfg)
    predictor = model.relation_head.predictor
    assert set(predictor.state_dict()) == {"scale", "general_classifier.weight", "general_classifier.bias",
                                           "clean_classifier.weight", "clean_classifier.bias"}
    load_stage1_model(model, path)
    general = stage1.relation_head.predictor.general_classifier
    assert torch.equal(predictor.clean_classifier.weight, general.weight)
    assert torch.equal(predictor.general_classifier.weight, general.weight)
    trainable = freeze_for_stage2(model)
    assert trainable == ["predictor.clean_classifier.bias", "predictor.clean_classifier.weight"]

    model.train()
    losses = model(*_batch(cfg))
    sum(losses.values()).backward()
    assert {name for name, p in model.named_parameters() if p.grad is not None} == {
        "relation_head.predictor.clean_classifier.weight", "relation_head.predictor.clean_classifier.bias"}

    union = torch.randn(4, predictor.clean_classifier.in_features)
    context = ObjectContext(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), torch.zeros(2, 0))
    pairs = torch.tensor([[0, 1]] * 4)
    raw = predictor.training_outputs(context, pairs, union, torch.zeros(4, dtype=torch.int64)).relation_logits
    torch.testing.assert_close(raw, predictor.clean_classifier(union), rtol=0, atol=0)
    torch.testing.assert_close(predictor.eval_logits(context, pairs, union), raw @ predictor.transfer.T)


def test_stage2_state_is_completed_by_the_predictor_and_names_what_is_missing(tiny_synthvg, tmp_path,
                                                                                toy_registered):
    cfg = _config(tiny_synthvg, tmp_path, "MODEL.ROI_RELATION_HEAD.PREDICTOR", toy_registered,
                  "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True")
    model = build_model(cfg)
    stage1_state = {key: value for key, value in model.state_dict().items() if ".clean_classifier." not in key}
    completed = model.complete_stage2_state(stage1_state)
    assert set(completed) == set(model.state_dict())
    assert torch.equal(completed["relation_head.predictor.clean_classifier.weight"],
                       stage1_state["relation_head.predictor.general_classifier.weight"])
    del stage1_state["relation_head.predictor.general_classifier.bias"]
    with pytest.raises(KeyError, match="general_classifier.bias to initialise clean_classifier.bias"):
        model.complete_stage2_state(stage1_state)


def test_the_frequency_baseline_needs_no_training_and_has_no_stage2(tiny_synthvg, tmp_path):
    cfg = _config(tiny_synthvg, tmp_path, "MODEL.ROI_RELATION_HEAD.PREDICTOR", "FrequencyBaselinePredictor")
    model = build_model(cfg)
    assert not model.requires_training
    with pytest.raises(ValueError, match="FrequencyBaselinePredictor has nothing to train in stage 2"):
        freeze_for_stage2(model)


# ---------------------------------------------------------------------------------------------- option keys
def _tiny_cfg(*extra: str):
    return load_config(SYNTHETIC_HCA_CONFIG, [*TINY_RELATION_OPTS, *extra])


@pytest.mark.parametrize("predictor, key, value", [
    ("ReBalanceHCAPredictor", "CONTEXT_OBJ_LAYER", "2"),
    ("TransformerPredictor", "CONTEXT_DROPOUT_RATE", "0.5"),
    ("FrequencyBaselinePredictor", "WITH_TRANSFER_CLASSIFIER", "True"),
    ("FrequencyBaselinePredictor", "WITH_CLEAN_CLASSIFIER", "True"),
])
def test_an_option_the_predictor_does_not_read_is_refused_naming_the_key(predictor, key, value):
    cfg = _tiny_cfg("MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor, f"MODEL.ROI_RELATION_HEAD.{key}", value)
    assert registry.inapplicable_options(cfg, predictor) == [key]
    with pytest.raises(ValueError, match=rf"MODEL.ROI_RELATION_HEAD.{key} = .*not an option of "
                                         rf"MODEL.ROI_RELATION_HEAD.PREDICTOR '{predictor}'"):
        build_predictor(cfg, parts=None)


def test_options_read_or_ignored_are_accepted():
    # the synthetic HCA config sets sizes and TRANSFORMER.*: read by the attention predictors, ignored by the
    # frequency baseline (the quickstart tests it with that config); SGB's default values are never refused
    cfg = _tiny_cfg("MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True")
    for predictor in ("ReBalanceHCAPredictor", "TransformerTransferPredictor", "TransformerPredictor"):
        assert registry.inapplicable_options(cfg, predictor) == []
    assert registry.inapplicable_options(_tiny_cfg(), "FrequencyBaselinePredictor") == []


def test_a_builder_may_declare_only_option_keys(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match=r"'Bad' declares keys that are not predictor option keys: \['NUM_CLASSES'\]"):
        registry.register_predictor("Bad", reads=("NUM_CLASSES",))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_predictor("TransformerPredictor", reads=())(lambda cfg, parts: None)


def test_an_unknown_predictor_is_one_line_listing_the_registered_names():
    cfg = _tiny_cfg("MODEL.ROI_RELATION_HEAD.PREDICTOR", "MotifsPredictor")
    with pytest.raises(ValueError) as error:
        build_predictor(cfg, parts=None)
    message = str(error.value)
    assert "\n" not in message and "MODEL.ROI_RELATION_HEAD.PREDICTOR 'MotifsPredictor'" in message
    assert all(name in message for name in registry.predictor_names())


# ------------------------------------------------------------------------- pins for HCA and the Transformer
def _parts(cfg, confusion=None) -> PredictorParts:
    generator = torch.Generator().manual_seed(3)
    dim = cfg.MODEL.ROI_BOX_HEAD.MLP_HEAD_DIM
    return PredictorParts(mode="predcls", object_vectors=torch.randn(8, 12, generator=generator),
                          pred_dist=torch.randn(8, 8, NUM_PREDICATES, generator=generator), fg_counts=None,
                          confusion_matrix=confusion, box_channels=dim, union_channels=dim)


def test_hca_predictor_keeps_its_checkpoint_key_names():
    cfg = _tiny_cfg("MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True")
    keys = {key for key in build_predictor(cfg, _parts(cfg)).state_dict() if not key.startswith("context.")}
    classifier = {"rel_compress.weight", "rel_compress.bias", "ctx_compress.weight", "ctx_compress.bias",
                  "freq_bias.obj_baseline.weight"}
    assert keys == {"post_emb.weight", "post_emb.bias", "post_cat.weight", "post_cat.bias",
                    *(f"general_classifier.{name}" for name in classifier),
                    *(f"clean_classifier.{name}" for name in classifier)}


def test_hca_predictor_draws_its_random_initialisation_in_the_documented_order():
    """Context, post_emb, post_cat, general classifier, clean classifier: the same draws for a seed as ever."""
    cfg = _tiny_cfg("MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True")
    parts = _parts(cfg)
    torch.manual_seed(5)
    built = build_predictor(cfg, parts).state_dict()

    head = cfg.MODEL.ROI_RELATION_HEAD
    hidden, pooling, dim = head.CONTEXT_HIDDEN_DIM, head.CONTEXT_POOLING_DIM, parts.box_channels
    torch.manual_seed(5)
    attention = AttentionOptions(num_heads=head.TRANSFORMER.NUM_HEAD, key_dim=head.TRANSFORMER.KEY_DIM,
                                 value_dim=head.TRANSFORMER.VAL_DIM, inner_dim=head.TRANSFORMER.INNER_DIM,
                                 dropout=head.TRANSFORMER.DROPOUT_RATE)
    context = HybridCoAttentionContext("predcls", parts.object_vectors, dim, hidden, head.TRANSFORMER.OBJ_LAYER,
                                       head.TRANSFORMER.REL_LAYER, attention, 0.5)
    post_emb = nn.Linear(hidden, 2 * hidden)
    nn.init.normal_(post_emb.weight, 0.0, 10.0 / math.sqrt(hidden))
    nn.init.zeros_(post_emb.bias)
    post_cat = xavier_linear(2 * hidden, pooling)
    up_dim = xavier_linear(dim, pooling) if dim != pooling else None
    general = PairClassifier(pooling, 2 * hidden, NUM_PREDICATES, parts.pred_dist)
    clean = PairClassifier(pooling, 2 * hidden, NUM_PREDICATES, parts.pred_dist)
    expected = {**{f"context.{k}": v for k, v in context.state_dict().items()},
                **{f"post_emb.{k}": v for k, v in post_emb.state_dict().items()},
                **{f"post_cat.{k}": v for k, v in post_cat.state_dict().items()},
                **({f"up_dim.{k}": v for k, v in up_dim.state_dict().items()} if up_dim is not None else {}),
                **{f"general_classifier.{k}": v for k, v in general.state_dict().items()},
                **{f"clean_classifier.{k}": v for k, v in clean.state_dict().items()}}
    assert set(built) == set(expected)
    assert all(torch.equal(built[key], expected[key]) for key in expected)

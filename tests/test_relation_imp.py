"""SGB's IMPPredictor: message passing against a transcription of SGB's dense form, batch independence,
training and testing in every mode on a tiny SynthVG, SGB checkpoint names and options (the ReBalance recipe:
tests/test_relation_training.py).
(Agreement with SGB's own code at 1e-4 relative is checked outside the repository, see the docs.)"""
from __future__ import annotations

import pytest
import torch

from baseline_testing import NUM_CLASSES, ROI_DIM, all_pairs, context_inputs, random_images, train_step_then_test
from relation_testing import SYNTHETIC_IMP_CONFIG, TINY_MODEL_OPTS, tiny_synthetic_config
from rebalance_hca.config import load_config
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.relation_head.context import IMPContext
from rebalance_hca.modeling.relation_head.object_labels import one_hot_logits
from rebalance_hca.modeling.relation_head.predictors import build_predictor, registry
from rebalance_hca.modeling.relation_head.predictors.imp import IMPPredictor
from rebalance_hca.modeling.relation_head.predictors.rebalance import RebalanceRecipe

MODES = ["predcls", "sgcls", "sgdet"]
HIDDEN, POOLING, PREDICATES = 12, 16, 5


def _tiny_imp_predictor(mode: str, recipe: RebalanceRecipe | None = None) -> IMPPredictor:
    torch.manual_seed(0)
    context = IMPContext(mode, in_channels=ROI_DIM, pair_channels=POOLING, num_classes=NUM_CLASSES, hidden_dim=HIDDEN)
    return IMPPredictor(context, union_channels=ROI_DIM, pooling_dim=POOLING, num_predicates=PREDICATES,
                        recipe=recipe or RebalanceRecipe())


def _inputs(images, mode, pairs, union, training=False):
    inputs = context_inputs(images, mode, training)
    inputs.pairs, inputs.union_features = pairs, union
    return inputs


def _sgb_dense_imp(context: IMPContext, roi, union, pairs, labels=None):
    """SGB's IMPContext.forward as written there: 0/1 sub2rel / obj2rel matrices and a list of factors."""
    num_objects, num_pairs = roi.shape[0], pairs.shape[0]
    sub2rel, obj2rel = torch.zeros(num_objects, num_pairs), torch.zeros(num_objects, num_pairs)
    sub2rel[pairs[:, 0], torch.arange(num_pairs)] = 1.0
    obj2rel[pairs[:, 1], torch.arange(num_pairs)] = 1.0
    vert = [context.node_gru(context.obj_unary(roi), torch.zeros(num_objects, context.hidden_dim))]
    edge = [context.edge_gru(torch.relu(context.edge_unary(union)), torch.zeros(num_pairs, context.hidden_dim))]
    for i in range(context.iterations):
        sub_vert, obj_vert = vert[i][pairs[:, 0]], vert[i][pairs[:, 1]]
        weighted_sub = context.sub_vert_w_fc(torch.cat((sub_vert, edge[i]), 1)) * sub_vert
        weighted_obj = context.obj_vert_w_fc(torch.cat((obj_vert, edge[i]), 1)) * obj_vert
        edge.append(context.edge_gru(weighted_sub + weighted_obj, edge[i]))
        pre_out = context.out_edge_w_fc(torch.cat((sub_vert, edge[i]), 1)) * edge[i]
        pre_in = context.in_edge_w_fc(torch.cat((obj_vert, edge[i]), 1)) * edge[i]
        vert.append(context.node_gru(sub2rel @ pre_out + obj2rel @ pre_in, vert[i]))
    object_logits = one_hot_logits(labels, context.num_classes) if labels is not None else context.obj_fc(vert[-1])
    return object_logits, edge[-1]


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_message_passing_is_sgb_dense_form(mode):
    predictor = _tiny_imp_predictor(mode).eval()
    images = random_images([4, 3], seed=5)
    pairs = all_pairs([4, 3])[torch.randperm(18, generator=torch.Generator().manual_seed(0))[:11]]
    union = torch.randn(len(pairs), ROI_DIM)
    with torch.no_grad():
        context = predictor.object_context(_inputs(images, mode, pairs, union))
        logits = predictor.eval_logits(context, pairs, union)
        labels = torch.cat([image["labels"] for image in images]) if mode == "predcls" else None
        roi = torch.cat([image["roi"] for image in images])
        expected_objects, expected_edges = _sgb_dense_imp(predictor.context, roi, predictor.up_dim(union), pairs, labels)
    torch.testing.assert_close(context.object_logits, expected_objects, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, predictor.general_classifier(expected_edges), rtol=1e-5, atol=1e-6)
    expected_labels = labels if labels is not None else expected_objects[:, 1:].argmax(1) + 1
    assert torch.equal(context.object_labels, expected_labels)


def test_logits_of_a_subset_of_the_pairs_and_a_pair_outside_them():
    predictor = _tiny_imp_predictor("predcls").eval()
    images = random_images([5], seed=6)
    pairs = all_pairs([5])
    with torch.no_grad():
        context = predictor.object_context(_inputs(images, "predcls", pairs, torch.randn(len(pairs), ROI_DIM)))
        everything = predictor.eval_logits(context, pairs, None)
        subset = torch.tensor([7, 0, 19, 3])
        assert torch.equal(predictor.eval_logits(context, pairs[subset], None), everything[subset])
        with pytest.raises(ValueError, match=r"pair \[2, 2\] was not among the pairs"):
            predictor.eval_logits(context, torch.tensor([[2, 2]]), None)


@pytest.mark.parametrize("mode", MODES)
def test_eval_outputs_of_an_image_do_not_depend_on_its_batch(mode):
    """An image's labels are identical alone and in a batch of 3; logits agree to float rounding only: the
    batched matrix products have other row counts, and this CPU's BLAS may round a row differently with the
    row count."""
    predictor = _tiny_imp_predictor(mode).eval()
    counts = [5, 8, 3]
    images = random_images(counts, seed=2)
    pairs = all_pairs(counts)
    union = torch.randn(len(pairs), ROI_DIM)
    with torch.no_grad():
        batched = predictor.object_context(_inputs(images, mode, pairs, union))
        batched_logits = predictor.eval_logits(batched, pairs, union)
        offset, pair_offset = 0, 0
        for image, count in zip(images, counts):
            image_pairs = all_pairs([count])
            image_union = union[pair_offset:pair_offset + len(image_pairs)]
            alone = predictor.object_context(_inputs([image], mode, image_pairs, image_union))
            logits = predictor.eval_logits(alone, image_pairs, image_union)
            assert torch.equal(alone.object_labels, batched.object_labels[offset:offset + count])
            torch.testing.assert_close(alone.object_logits, batched.object_logits[offset:offset + count],
                                       rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(logits, batched_logits[pair_offset:pair_offset + len(image_pairs)],
                                       rtol=1e-5, atol=1e-5)
            offset += count
            pair_offset += len(image_pairs)


# ------------------------------------------------------------------------ the model on a tiny SynthVG
def _config(tiny_synthvg, tmp_path, mode, *extra):
    return tiny_synthetic_config(SYNTHETIC_IMP_CONFIG, tiny_synthvg, str(tmp_path / "out"), mode, *extra)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_trains_and_tests_in_every_mode(tiny_synthvg, tmp_path, mode):
    cfg = _config(tiny_synthvg, tmp_path, mode)
    torch.manual_seed(0)
    model = build_model(cfg)
    predictor = model.relation_head.predictor
    assert isinstance(predictor, IMPPredictor) and (predictor.context.obj_fc is None) == (mode == "predcls")
    assert predictor.context.hidden_dim == 512 and predictor.up_dim is None  # SGB's width; Pd == D here
    losses = train_step_then_test(model, cfg)
    assert set(losses) == {"loss_rel", "loss_refine_obj"}
    assert (float(losses["loss_refine_obj"].detach()) > 0) == (mode != "predcls")


# ------------------------------------------------------------------------------------ SGB names, options
def _sgb_names(state: dict) -> dict:
    sgb = {}
    for key, value in state.items():
        key = key.replace("general_classifier.", "context_layer.rel_fc.").replace("context.", "context_layer.", 1)
        sgb[key] = value.clone()
    return sgb


def test_from_sgb_state_maps_sgb_names():
    predictor = _tiny_imp_predictor("sgcls")
    ours = predictor.state_dict()
    sgb = _sgb_names(ours)
    assert "context_layer.rel_fc.weight" in sgb and "up_dim.weight" in sgb
    mapped = IMPPredictor.from_sgb_state(sgb, mode="sgcls")
    assert mapped.keys() == ours.keys() and all(torch.equal(mapped[key], ours[key]) for key in ours)
    predcls = IMPPredictor.from_sgb_state(sgb, mode="predcls")
    assert predcls.keys() == _tiny_imp_predictor("predcls").state_dict().keys()
    assert "clean_classifier.weight" in IMPPredictor.from_sgb_state(sgb, recipe_prefix="clean_classifier")

    with pytest.raises(ValueError, match=r"IMPPredictor state .*no counterpart in ours: freq_bias\.obj_baseline\.weight"):
        IMPPredictor.from_sgb_state({**sgb, "freq_bias.obj_baseline.weight": torch.zeros(1)})
    without_obj_fc = {key: value for key, value in sgb.items() if ".obj_fc." not in key}
    with pytest.raises(ValueError, match=r"does not fill: context\.obj_fc\."):
        IMPPredictor.from_sgb_state(without_obj_fc, mode="sgdet")


def _tiny_cfg(*extra: str):
    return load_config(SYNTHETIC_IMP_CONFIG, [*TINY_MODEL_OPTS, *extra])


def test_sgb_yaml_keys_imp_does_not_use_are_accepted_and_others_refused():
    accepted = _tiny_cfg("MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS", "True",
                         "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "False",
                         "MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT", "0.0")
    assert registry.inapplicable_options(accepted, "IMPPredictor") == []
    with pytest.raises(ValueError, match=r"MODEL.ROI_RELATION_HEAD.CONTEXT_OBJ_LAYER = 2.*not an option of "
                                         r"MODEL.ROI_RELATION_HEAD.PREDICTOR 'IMPPredictor'"):
        build_predictor(_tiny_cfg("MODEL.ROI_RELATION_HEAD.CONTEXT_OBJ_LAYER", "2"), parts=None)


def test_the_context_refuses_inputs_without_pairs():
    context = IMPContext("predcls", in_channels=ROI_DIM, pair_channels=POOLING, num_classes=NUM_CLASSES, hidden_dim=4)
    with pytest.raises(ValueError, match="needs the pairs and their union features"):
        context(context_inputs(random_images([3]), "predcls"))

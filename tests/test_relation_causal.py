"""SGB's CausalAnalysisPredictor (causal TDE): the pair geometry, the effect arithmetic on a hand-built case,
the moving averages, the counterfactual pass of the Motifs and VTransE contexts (VCTree's: test_relation_vctree),
VCTree's tree-score loss, weights without trained averages refused, training and testing in every mode on a
tiny SynthVG with the Motifs and the VCTree context, SGB checkpoint names and bad options. (Agreement with
SGB's own code at 1e-4 relative is checked outside the repository, see the docs.)"""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from baseline_testing import (EMBED_DIM, HIDDEN_DIM, NUM_CLASSES, ROI_DIM, add_sgb_vctree_decoder_aliases, all_pairs,
                              context_inputs, random_images, sgb_vctree_names)
from relation_testing import (SYNTHETIC_CAUSAL_CONFIG, SYNTHETIC_CAUSAL_VCTREE_CONFIG, TINY_MODEL_OPTS, mode_opts,
                              tiny_synthetic_config)
from tool_loading import load_tool
from rebalance_hca.config import load_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.engine.checkpoint import Checkpointer
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.relation_head.box_geometry import normalized_box_info, pair_box_info
from rebalance_hca.modeling.relation_head.context import LSTMContext, ObjectContext, VTransEContext
from rebalance_hca.modeling.relation_head.context.vctree import VCTreeContext, pair_score_loss
from rebalance_hca.modeling.relation_head.context.counterfactual import AVERAGE_RATIO
from rebalance_hca.modeling.relation_head.predictors import PredictorParts, build_predictor, registry
from rebalance_hca.modeling.relation_head.predictors.causal import CausalAnalysisPredictor
from rebalance_hca.modeling.relation_head.predictors.rebalance import RebalanceRecipe
from rebalance_hca.utils.cli import UserInputError

MODES = ["predcls", "sgcls", "sgdet"]
POOLING, PREDICATES = 5, 4


# ------------------------------------------------------------------------------------------- geometry
def test_pair_geometry_hand_case():
    # image 50 wide, 200 high: the scale is max(W, H, 100) = 200
    subject = normalized_box_info(torch.tensor([[10.0, 20.0, 29.0, 59.0]]), (200, 50))
    assert subject.tolist()[0] == pytest.approx([0.05, 0.1, 0.145, 0.295, 0.1, 0.2, 0.1, 0.2])
    obj = normalized_box_info(torch.tensor([[20.0, 30.0, 69.0, 39.0]]), (200, 50))
    geometry = pair_box_info(subject, obj)[0].tolist()
    assert geometry[:16] == pytest.approx(subject.tolist()[0] + obj.tolist()[0])
    # union (0.05, 0.1, 0.345, 0.295): widths add 1.0 in normalised units
    assert geometry[16:24] == pytest.approx([0.05, 0.1, 0.345, 0.295, 0.6975, 0.6975, 1.295, 1.195])
    # intersection (0.1, 0.15, 0.145, 0.195)
    assert geometry[24:] == pytest.approx([0.1, 0.15, 0.145, 0.195, 0.6225, 0.6725, 1.045, 1.045])
    apart = normalized_box_info(torch.tensor([[30.0, 0.0, 40.0, 5.0]]), (200, 50))  # x overlap, y apart
    assert pair_box_info(subject, apart)[0, 24:].tolist() == [0.0] * 8
    touching = normalized_box_info(torch.tensor([[29.0, 59.0, 40.0, 70.0]]), (200, 50))  # x2 == x1: kept
    assert pair_box_info(subject, touching)[0, 24:].abs().sum() > 0


# ------------------------------------------------------------------------------- the effect arithmetic
class ProtocolStub(nn.Module):
    """A context following the counterfactual protocol with fixed outputs for 3 objects of one image."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.factual = ObjectContext(torch.randn(3, NUM_CLASSES, generator=generator) * 2, torch.tensor([2, 5, 1]),
                                     torch.randn(3, HIDDEN_DIM, generator=generator))
        self.average = ObjectContext(torch.randn(3, NUM_CLASSES, generator=generator), torch.tensor([3, 3, 4]),
                                     torch.randn(3, HIDDEN_DIM, generator=generator))
        self.weight = nn.Parameter(torch.ones(()))

    def averages_used_by_counterfactual(self) -> list[str]:
        return []

    def forward(self, inputs, counterfactual: bool = False) -> ObjectContext:
        chosen = self.average if counterfactual else self.factual
        return ObjectContext(chosen.object_logits, chosen.object_labels, chosen.edge_context * self.weight)


def _stub_predictor(fusion: str, effect: str, spatial: bool = True) -> CausalAnalysisPredictor:
    torch.manual_seed(3)
    predictor = CausalAnalysisPredictor(
        ProtocolStub(), HIDDEN_DIM, POOLING, PREDICATES, torch.randn(NUM_CLASSES, NUM_CLASSES, PREDICATES),
        effect_analysis=True, spatial_for_vision=spatial, fusion=fusion, effect_type=effect,
        pairs_by_difference=False, frequency_bias_dropout=0.0, recipe=RebalanceRecipe())
    with torch.no_grad():
        predictor.untreated_spt.copy_(torch.rand(32))
    return predictor.eval()


def _stub_inputs():
    image = random_images([3], seed=4)[0]
    return context_inputs([image], "sgcls"), image


def _loop_expected_bias(table: torch.Tensor, p_s: torch.Tensor, p_o: torch.Tensor) -> torch.Tensor:
    """Σ_x Σ_y p_s[x] p_o[y] table[x, y], by loops."""
    total = torch.zeros(table.shape[-1], dtype=torch.float64)
    for x in range(len(p_s)):
        for y in range(len(p_o)):
            total += float(p_s[x]) * float(p_o[y]) * table[x, y].double()
    return total


@pytest.mark.parametrize("fusion", ["sum", "gate"])
@pytest.mark.parametrize("effect", ["TDE", "NIE", "TE"])
def test_effects_follow_the_formulas_on_a_hand_built_case(fusion, effect):
    predictor = _stub_predictor(fusion, effect)
    inputs, image = _stub_inputs()
    pairs = all_pairs([3])
    union = torch.randn(len(pairs), POOLING)
    with torch.no_grad():
        logits = predictor.eval_logits(predictor.object_context(inputs), pairs, union)
        stub, classifier = predictor.context, predictor.general_classifier
        table = classifier.freq_bias.obj_baseline.weight.view(NUM_CLASSES, NUM_CLASSES, PREDICATES)
        p = torch.softmax(stub.factual.object_logits, 1)
        q = torch.softmax(stub.average.object_logits, 1)
        boxes = normalized_box_info(image["boxes"], image["size"])
        for row, (s, o) in enumerate(pairs.tolist()):
            def representation(edges, spatial):
                head = predictor.post_emb(edges[s])[:HIDDEN_DIM]
                tail = predictor.post_emb(edges[o])[HIDDEN_DIM:]
                return predictor.post_cat(torch.cat([head, tail])[None])[0] * predictor.spt_emb(spatial[None])[0]

            c_f = representation(stub.factual.edge_context, pair_box_info(boxes[s:s + 1], boxes[o:o + 1])[0])
            c_a = representation(stub.average.edge_context, predictor.untreated_spt)

            def fused(context_rep, probabilities):
                bias = _loop_expected_bias(table, probabilities[s], probabilities[o]).float()
                visual = classifier.vis_compress(union[row])
                if fusion == "sum":
                    return visual + classifier.ctx_compress(context_rep) + bias
                return classifier.ctx_compress(context_rep) * torch.sigmoid(
                    visual + bias + classifier.ctx_gate_fc(context_rep))

            expected = {"TDE": fused(c_f, p) - fused(c_a, p), "NIE": fused(c_a, p) - fused(c_a, q),
                        "TE": fused(c_f, p) - fused(c_a, q)}[effect]
            torch.testing.assert_close(logits[row], expected, rtol=1e-4, atol=1e-4)


def test_sum_tde_is_the_context_difference_whatever_the_union_and_the_bias():
    predictor = _stub_predictor("sum", "TDE", spatial=False)
    inputs, _ = _stub_inputs()
    pairs = all_pairs([3])
    with torch.no_grad():
        context = predictor.object_context(inputs)
        first = predictor.eval_logits(context, pairs, torch.randn(len(pairs), POOLING))
        predictor.general_classifier.freq_bias.obj_baseline.weight.mul_(3.0)
        second = predictor.eval_logits(context, pairs, torch.randn(len(pairs), POOLING))
        ctx = predictor.general_classifier.ctx_compress
        expected = (ctx(predictor.pair_context(context.edge_context, pairs))
                    - ctx(predictor.pair_context(context.counterfactual_edge_context, pairs)))
    assert torch.equal(first, second)
    torch.testing.assert_close(first, expected)


def test_training_returns_the_auxiliary_losses_and_updates_the_averages_in_train_mode_only():
    predictor = _stub_predictor("sum", "none").train()
    inputs, image = _stub_inputs()
    pairs = all_pairs([3])
    union = torch.randn(len(pairs), POOLING)
    spt_before = predictor.untreated_spt.clone()
    context = predictor.object_context(inputs)
    output = predictor.training_outputs(context, pairs, union, torch.tensor([0, 1, 2, 3, 0, 1]))
    assert set(output.losses) == {"auxiliary_ctx", "auxiliary_vis", "auxiliary_frq"}
    boxes = normalized_box_info(image["boxes"], image["size"])
    geometry = pair_box_info(boxes[pairs[:, 0]], boxes[pairs[:, 1]])
    torch.testing.assert_close(predictor.untreated_spt,
                               spt_before * (1 - AVERAGE_RATIO) + AVERAGE_RATIO * geometry.mean(0))
    torch.testing.assert_close(predictor.untreated_feat, AVERAGE_RATIO * union.mean(0))
    assert predictor.avg_post_ctx.abs().sum() > 0
    frozen = {name: value.clone() for name, value in predictor.named_buffers()}
    predictor.eval()
    with torch.no_grad():
        predictor.training_outputs(predictor.object_context(inputs), pairs, union, torch.zeros(6, dtype=torch.int64))
    assert all(torch.equal(frozen[name], value) for name, value in predictor.named_buffers())
    gated = _stub_predictor("gate", "none").train()
    assert set(gated.training_outputs(gated.object_context(inputs), pairs, union,
                                      torch.zeros(6, dtype=torch.int64)).losses) == {"auxiliary_ctx"}


# ---------------------------------------------------------------------- the contexts' counterfactual pass
def _motifs_context(mode: str) -> LSTMContext:
    torch.manual_seed(0)
    context = LSTMContext(mode, torch.randn(NUM_CLASSES, EMBED_DIM), torch.randn(NUM_CLASSES + 1, EMBED_DIM),
                          ROI_DIM, HIDDEN_DIM, obj_layers=1, rel_layers=1, dropout=0.0, nms_threshold=0.5,
                          effect_analysis=True)
    return context


def _motifs_causal_predictor(mode: str, fusion: str, effect: str) -> CausalAnalysisPredictor:
    return CausalAnalysisPredictor(
        _motifs_context(mode), HIDDEN_DIM, ROI_DIM, PREDICATES, torch.randn(NUM_CLASSES, NUM_CLASSES, PREDICATES),
        effect_analysis=True, spatial_for_vision=True, fusion=fusion, effect_type=effect, pairs_by_difference=False,
        frequency_bias_dropout=0.0, recipe=RebalanceRecipe())


def _vctree_causal_predictor(mode: str, effect: str) -> CausalAnalysisPredictor:
    torch.manual_seed(0)
    pred_dist = torch.log_softmax(torch.randn(NUM_CLASSES, NUM_CLASSES, PREDICATES), 2)
    context = VCTreeContext(mode, torch.randn(NUM_CLASSES, EMBED_DIM), torch.randn(NUM_CLASSES + 1, EMBED_DIM),
                            pred_dist, ROI_DIM, HIDDEN_DIM, obj_layers=1, rel_layers=1, dropout_rate=0.0,
                            effect_analysis=True)
    return CausalAnalysisPredictor(
        context, HIDDEN_DIM, ROI_DIM, PREDICATES, pred_dist, effect_analysis=True, spatial_for_vision=True,
        fusion="sum", effect_type=effect, pairs_by_difference=False, frequency_bias_dropout=0.0,
        recipe=RebalanceRecipe(), scores_trees=True)


def test_vctree_layer_returns_the_tree_score_loss_and_asks_for_the_relation_matrix():
    predictor = _vctree_causal_predictor("sgcls", "none").train()
    assert predictor.uses_relation_adjacency
    assert not _motifs_causal_predictor("sgcls", "sum", "none").uses_relation_adjacency
    counts = [4, 3]
    inputs = context_inputs(random_images(counts, seed=11), "sgcls", training=True)
    inputs.relation_adjacency = [torch.ones(count, count, dtype=torch.int64) for count in counts]
    pairs = all_pairs(counts)
    context = predictor.object_context(inputs)
    output = predictor.training_outputs(context, pairs, torch.randn(len(pairs), ROI_DIM),
                                        torch.zeros(len(pairs), dtype=torch.int64))
    assert set(output.losses) == {"auxiliary_ctx", "auxiliary_vis", "auxiliary_frq", "binary_loss"}
    scores = predictor.context(inputs).pair_score_logits  # the same scores (the decoder's sampling comes after)
    torch.testing.assert_close(output.losses["binary_loss"], pair_score_loss(scores, inputs.relation_adjacency))
    output.losses["binary_loss"].backward()
    assert predictor.context.bi_freq_prior.weight.grad is not None


def test_motifs_context_keeps_averages_in_training_only():
    context = _motifs_context("predcls").train()
    images = random_images([4, 2], seed=5)
    inputs = context_inputs(images, "predcls", training=True)
    output = context(inputs)
    expected = AVERAGE_RATIO * torch.cat([context.obj_embed2(output.object_labels), inputs.roi_features], 1).mean(0)
    torch.testing.assert_close(context.untreated_edg_feat, expected.detach())
    assert context.untreated_dcd_feat.abs().sum() > 0 and context.untreated_obj_feat.abs().sum() > 0
    before = {name: value.clone() for name, value in context.named_buffers()}
    with torch.no_grad():
        context.eval()(inputs)
        context(inputs, counterfactual=True)
    assert all(torch.equal(before[name], value) for name, value in context.named_buffers())
    with pytest.raises(ValueError, match="eval mode"):
        context.train()(inputs, counterfactual=True)


def test_motifs_counterfactual_replaces_the_decoder_and_edge_inputs_and_keeps_the_object_context():
    context = _motifs_context("sgcls")
    with torch.no_grad():
        for name, buffer in context.named_buffers():
            if name.startswith("untreated_"):
                buffer.copy_(torch.randn(buffer.shape))
    context.eval()
    images = random_images([5], seed=6)
    inputs = context_inputs(images, "sgcls")
    changed = context_inputs(random_images([5], seed=6), "sgcls")
    changed.roi_features = changed.roi_features + torch.randn(changed.roi_features.shape)
    with torch.no_grad():
        factual, average = context(inputs), context(inputs, counterfactual=True)
        average_changed = context(changed, counterfactual=True)
        assert not torch.equal(factual.object_logits, context(changed).object_logits)
        # the decoder sees only the average: its dists do not depend on the image
        assert torch.equal(average.object_logits, average_changed.object_logits)
        # the edge LSTM sees [average, obj_ctx]: obj_ctx is factual (depends on the roi features) ...
        assert not torch.equal(average.edge_context, average_changed.edge_context)
        # ... and obj_embed2 / the roi no longer enter directly
        context.obj_embed2.weight.add_(1.0)
        assert torch.equal(context(inputs, counterfactual=True).edge_context, average.edge_context)
        assert not torch.equal(context(inputs).edge_context, factual.edge_context)


def test_vtranse_counterfactual_is_the_same_for_every_object():
    torch.manual_seed(0)
    context = VTransEContext(torch.randn(NUM_CLASSES, EMBED_DIM), ROI_DIM, HIDDEN_DIM, effect_analysis=True)
    with torch.no_grad():
        context.untreated_obj_feat.copy_(torch.randn(context.untreated_obj_feat.shape))
        context.untreated_edg_feat.copy_(torch.randn(context.untreated_edg_feat.shape))
    inputs = context_inputs(random_images([4], seed=8), "predcls")
    with torch.no_grad():
        average = context.eval()(inputs, counterfactual=True)
        factual = context(inputs)
    torch.testing.assert_close(average.object_logits, average.object_logits[:1].expand(4, -1))
    torch.testing.assert_close(average.edge_context, average.edge_context[:1].expand(4, -1))
    assert not torch.allclose(factual.edge_context, factual.edge_context[:1].expand(4, -1))
    # labels are the argmax over every class, background included, even in PredCls (SGB's VTransE)
    assert torch.equal(factual.object_labels, factual.object_logits.argmax(1))


# ------------------------------------------------------------------- weights without the averages refused
def test_an_effect_without_trained_averages_is_refused_at_loading_and_at_the_forward():
    predictor = _motifs_causal_predictor("sgcls", "sum", "TDE").eval()
    message = ("needs the moving averages .*never trained.*: context.untreated_edg_feat, "
               "context.untreated_dcd_feat, untreated_spt")
    with pytest.raises(ValueError, match=message):
        predictor.object_context(context_inputs(random_images([3]), "sgcls"))
    with pytest.raises(ValueError, match=message):
        predictor.load_state_dict(predictor.state_dict())
    trained = {name: value + 0.5 if "untreated" in name else value for name, value in predictor.state_dict().items()}
    predictor.load_state_dict(trained)
    predictor.object_context(context_inputs(random_images([3]), "sgcls"))
    predictor.effect_type = "none"
    predictor.load_state_dict({**trained, "untreated_spt": torch.zeros(32)})  # the factual logits need none


@pytest.mark.parametrize("mode, missing", [("predcls", "context.untreated_edg_feat, untreated_spt"),
                                           ("sgcls", "context.untreated_edg_feat, context.untreated_dcd_feat, "
                                                     "untreated_spt")])
def test_vctree_effect_without_trained_averages_is_refused(mode, missing):
    predictor = _vctree_causal_predictor(mode, "TDE").eval()
    with pytest.raises(ValueError, match=f"never trained.*: {missing};"):
        predictor.object_context(context_inputs(random_images([3]), mode))
    with pytest.raises(ValueError, match=f"never trained.*: {missing};"):
        predictor.load_state_dict(predictor.state_dict())


def test_the_test_tool_refuses_tde_from_weights_without_averages_in_one_line(tiny_synthvg, tmp_path):
    cfg = tiny_synthetic_config(SYNTHETIC_CAUSAL_CONFIG, tiny_synthvg, str(tmp_path / "out"))
    weights = Checkpointer(build_model(cfg), save_dir=str(tmp_path / "untrained")).save("model_final", 0)
    test = load_tool("relation_test_net")
    args = ["--config-file", SYNTHETIC_CAUSAL_CONFIG, *TINY_MODEL_OPTS, *mode_opts("predcls"),
            "DATASETS.DATA_DIR", tiny_synthvg, "GLOVE_DIR", os.path.join(tiny_synthvg, "vg"),
            "OUTPUT_DIR", str(tmp_path / "test"), "MODEL.WEIGHT", weights,
            "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE", "TDE"]
    with pytest.raises(UserInputError, match="loading the model to test: .*EFFECT_TYPE 'TDE' needs the moving "
                                             "averages.*context.untreated_edg_feat, untreated_spt"):
        test.main(args)


# ------------------------------------------------------------------------ the model on a tiny SynthVG
def _config(tiny_synthvg, tmp_path, mode, *extra):
    return tiny_synthetic_config(SYNTHETIC_CAUSAL_CONFIG, tiny_synthvg, str(tmp_path / "out"), mode, *extra)


def _batch(cfg, split="train"):
    images, targets, _ = next(iter(make_data_loader(cfg, split)))
    return images, targets


@pytest.mark.slow
@pytest.mark.parametrize("mode, layer, fusion", [("predcls", "motifs", "sum"), ("sgcls", "motifs", "gate"),
                                                 ("sgdet", "motifs", "sum"), ("sgcls", "vtranse", "sum"),
                                                 ("predcls", "vctree", "sum"), ("sgcls", "vctree", "gate"),
                                                 ("sgdet", "vctree", "sum")])
def test_trains_and_tests_every_effect(tiny_synthvg, tmp_path, mode, layer, fusion):
    config_file = SYNTHETIC_CAUSAL_VCTREE_CONFIG if layer == "vctree" else SYNTHETIC_CAUSAL_CONFIG
    layer_opts = ["MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER", layer,
                  "MODEL.ROI_RELATION_HEAD.CAUSAL.FUSION_TYPE", fusion]
    cfg = tiny_synthetic_config(config_file, tiny_synthvg, str(tmp_path / "out"), mode, *layer_opts)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    losses = model(*_batch(cfg))
    auxiliary = {"auxiliary_ctx"} | ({"auxiliary_vis", "auxiliary_frq"} if fusion == "sum" else set())
    tree_loss = {"binary_loss"} if layer == "vctree" else set()
    assert set(losses) == {"loss_rel", "loss_refine_obj"} | auxiliary | tree_loss
    if tree_loss:  # the head passed each image's relation matrix (SGDet: the untrained detector's boxes match
        # no relation, and against all-zero targets the saturated initial prior's loss is exactly 0)
        assert losses["binary_loss"].requires_grad and (mode == "sgdet" or float(losses["binary_loss"].detach()) > 0)
    sum(losses.values()).backward()
    assert [name for name, p in model.named_parameters() if name.startswith("relation_head.") and p.grad is None] == []
    tested = build_model(tiny_synthetic_config(config_file, tiny_synthvg, str(tmp_path / "out"), mode, *layer_opts,
                                               "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_TYPE", "TDE"))
    tested.load_state_dict(model.state_dict())  # one training step has moved the averages
    test_images, test_targets = _batch(cfg, "test")
    for effect in ("TDE", "none"):  # NIE and TE: the hand-built case above
        tested.relation_head.predictor.effect_type = effect
        with torch.no_grad():
            predictions = tested.eval()(test_images, test_targets)
        assert all(torch.isfinite(p["rel_scores"]).all() and len(p["rel_pair_idxs"]) for p in predictions)


def test_eval_effects_of_an_image_do_not_depend_on_its_batch():
    """Labels identical, logits equal to float rounding (see the Motifs test of the same name)."""
    predictor = _motifs_causal_predictor("sgcls", "gate", "TE")
    with torch.no_grad():
        for name, buffer in predictor.named_buffers():
            if "untreated" in name:
                buffer.copy_(torch.randn(buffer.shape))
    predictor.eval()
    counts = [4, 6, 3]
    images = random_images(counts, seed=9)
    union = torch.randn(len(all_pairs(counts)), ROI_DIM)
    with torch.no_grad():
        batched = predictor.eval_logits(predictor.object_context(context_inputs(images, "sgcls")), all_pairs(counts),
                                        union)
        start = 0
        for image, count in zip(images, counts):
            pairs = all_pairs([count])
            alone = predictor.eval_logits(predictor.object_context(context_inputs([image], "sgcls")), pairs,
                                          union[start:start + len(pairs)])
            torch.testing.assert_close(alone, batched[start:start + len(pairs)], rtol=1e-5, atol=1e-5)
            start += len(pairs)


# ------------------------------------------------------------------------------------ SGB names, options
def test_from_sgb_state_maps_sgb_names():
    predictor = _motifs_causal_predictor("predcls", "gate", "none")
    ours = predictor.state_dict()
    sgb = {key.replace("context.", "context_layer.", 1).replace("general_classifier.", ""): value
           for key, value in ours.items()}
    sgb["context_layer.decoder_rnn.out_obj.weight"] = torch.zeros(2, 2)  # SGB builds it in PredCls too
    mapped = CausalAnalysisPredictor.from_sgb_state(sgb, mode="predcls")
    assert mapped.keys() == ours.keys() and all(torch.equal(mapped[key], ours[key]) for key in ours)
    del sgb["untreated_spt"]
    with pytest.raises(ValueError, match="does not fill: untreated_spt"):
        CausalAnalysisPredictor.from_sgb_state(sgb, mode="predcls")


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_from_sgb_state_maps_the_vctree_layout(mode):
    source = _vctree_causal_predictor(mode, "none")
    with torch.no_grad():
        for value in source.state_dict().values():
            if value.is_floating_point():
                value.add_(torch.randn(value.shape))  # every average and parameter distinct from its init
    sgb = sgb_vctree_names(source.state_dict())
    decoder = "context_layer.decoder_rnn."
    if mode == "predcls":  # SGB builds the label decoder in PredCls too
        sgb.update({f"{decoder}obj_embed.weight": torch.randn(2, 2), f"{decoder}out.weight": torch.randn(2, 2),
                    f"{decoder}out.bias": torch.randn(2)})
    add_sgb_vctree_decoder_aliases(sgb)
    assert "context_layer.obj_ctx_rnn.multi_layer_lstm.0.treeLSTM_foreward.treeLSTM.px.weight" in sgb
    mapped = CausalAnalysisPredictor.from_sgb_state(sgb, mode=mode)
    target = _vctree_causal_predictor(mode, "TDE")
    target.load_state_dict(mapped, strict=True)
    assert all(torch.equal(target.state_dict()[key], value) for key, value in source.state_dict().items())
    sgb["context_layer.decoder_rnn.decoderLSTM.embed_out_layer.bias"] = torch.ones(2)
    sgb["attribute_head.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="attribute_head.weight" if mode == "predcls" else "embed_out_layer.bias"):
        CausalAnalysisPredictor.from_sgb_state(sgb, mode=mode)


def _tiny_cfg(*extra: str):
    return load_config(SYNTHETIC_CAUSAL_CONFIG, [*TINY_MODEL_OPTS, *extra])


@pytest.mark.parametrize("overrides, message", [
    (["CAUSAL.SEPARATE_SPATIAL", "True"], "SEPARATE_SPATIAL True is not supported"),
    (["CAUSAL.EFFECT_ANALYSIS", "False", "CAUSAL.EFFECT_TYPE", "TDE"], "EFFECT_TYPE 'TDE' needs .*EFFECT_ANALYSIS True"),
    (["CAUSAL.EFFECT_TYPE", "TIE"], "EFFECT_TYPE must be one of"),
    (["CAUSAL.FUSION_TYPE", "product"], "FUSION_TYPE must be one of"),
    (["CAUSAL.CONTEXT_LAYER", "lstm"], "CONTEXT_LAYER must be one of motifs, vctree, vtranse"),
    (["CONTEXT_POOLING_DIM", "32"], r"CONTEXT_POOLING_DIM \(32\) must equal .*MLP_HEAD_DIM \(64\)"),
    (["CAUSAL.CONTEXT_LAYER", "vtranse", "CONTEXT_OBJ_LAYER", "2"],
     r"CONTEXT_OBJ_LAYER = 2: not an option of MODEL.ROI_RELATION_HEAD.CAUSAL.CONTEXT_LAYER 'vtranse'"),
    (["PREDICT_USE_BIAS", "False"], "PREDICT_USE_BIAS = False: not an option of .*'CausalAnalysisPredictor'"),
])
def test_bad_options_are_refused_naming_the_key(overrides, message):
    opts = [value if index % 2 else f"MODEL.ROI_RELATION_HEAD.{value}" for index, value in enumerate(overrides)]
    parts = PredictorParts(mode="predcls", object_vectors=torch.randn(NUM_CLASSES, EMBED_DIM),
                           pred_dist=torch.randn(NUM_CLASSES, NUM_CLASSES, PREDICATES), fg_counts=None,
                           confusion_matrix=None, box_channels=64, union_channels=64)
    with pytest.raises(ValueError, match=message):
        build_predictor(_tiny_cfg(*opts), parts)


@pytest.mark.parametrize("name, predictor", [("motifs", "MotifPredictor"), ("causal_motifs", "CausalAnalysisPredictor")])
def test_vg150_configs_carry_sgb_values(name, predictor):
    cfg = load_config(os.path.join(os.path.dirname(SYNTHETIC_CAUSAL_CONFIG), "..", "vg150",
                                   f"e2e_relation_X_101_32_8_FPN_1x_{name}.yaml"))
    head = cfg.MODEL.ROI_RELATION_HEAD
    assert head.PREDICTOR == predictor and registry.inapplicable_options(cfg, predictor) == []
    assert (head.CONTEXT_HIDDEN_DIM, head.CONTEXT_POOLING_DIM, head.CONTEXT_OBJ_LAYER, head.CONTEXT_REL_LAYER,
            head.FREQUENCY_BIAS_DROPOUT, head.LOSS.TYPE, cfg.SOLVER.BASE_LR) == (512, 4096, 1, 1, 0.0,
                                                                               "CrossEntropy", 0.01)
    if predictor == "CausalAnalysisPredictor":
        assert dict(head.CAUSAL) == {"EFFECT_ANALYSIS": True, "SPATIAL_FOR_VISION": True, "SEPARATE_SPATIAL": False,
                                     "FUSION_TYPE": "sum", "CONTEXT_LAYER": "motifs", "EFFECT_TYPE": "none"}

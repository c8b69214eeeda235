"""SGB's MotifPredictor: the leftright order, the highway decoder, batch independence, training and testing in
every mode on a tiny SynthVG, SGB checkpoint names and bad options (the ReBalance recipe:
tests/test_relation_training.py, on every context). (Agreement with SGB's own code at 1e-4 relative is
checked outside the repository, see the docs.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baseline_testing import (EMBED_DIM, HIDDEN_DIM, NUM_CLASSES, ROI_DIM, all_pairs, context_inputs, first_batch,
                              random_images, train_step_then_test)
from relation_testing import SYNTHETIC_MOTIFS_CONFIG, TINY_MODEL_OPTS, tiny_synthetic_config
from rebalance_hca.config import load_config
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.relation_head.box_geometry import box_iou_legacy
from rebalance_hca.modeling.relation_head.context.motifs import DecoderRNN, LSTMContext, leftright_order
from rebalance_hca.modeling.relation_head.predictors import build_predictor, registry
from rebalance_hca.modeling.relation_head.predictors.motifs import MotifPredictor
from rebalance_hca.modeling.relation_head.predictors.rebalance import RebalanceRecipe

MODES = ["predcls", "sgcls", "sgdet"]


def _boxes(x_ranges: list[tuple[float, float]]) -> torch.Tensor:
    return torch.tensor([[x1, 0.0, x2, 10.0] for x1, x2 in x_ranges])


# ------------------------------------------------------------------------------------------- the order
def test_leftright_order_runs_right_to_left_with_the_largest_image_first():
    # image 0: centres 10, 50, 30; image 1: centres 5, 40 -> per image 1, 2, 0 and 4, 3; image 0 is longer
    order = leftright_order(_boxes([(0, 20), (40, 60), (20, 40), (0, 10), (30, 50)]), [3, 2])
    assert order.permutation.tolist() == [1, 4, 2, 3, 0]  # time-major: step 0 (1, 4), step 1 (2, 3), step 2 (0)
    assert order.batch_sizes.tolist() == [2, 2, 1]
    assert order.image_sorted.tolist() == [1, 2, 0, 4, 3]
    assert order.permutation[order.inverse].tolist() == [0, 1, 2, 3, 4]


def test_leftright_order_ties_equal_counts_and_empty_images():
    # image 0: two equal centres (5) -> the earlier box first; image 1 (centres 7, 3) has as many boxes and,
    # being later, comes first in every step (SGB's offset rule); an empty image takes no part
    order = leftright_order(_boxes([(0, 10), (2, 8), (6, 8), (0, 6)]), [2, 0, 2])
    assert order.permutation.tolist() == [2, 0, 3, 1]
    assert order.batch_sizes.tolist() == [2, 2]


def test_leftright_order_of_an_image_does_not_depend_on_the_batch():
    images = random_images([7, 3, 9], seed=1)
    batch = leftright_order(torch.cat([image["boxes"] for image in images]), [7, 3, 9])
    offset = 0
    for image, rows in zip(images, batch.image_sorted.split([7, 3, 9])):
        alone = leftright_order(image["boxes"], [len(image["boxes"])])
        assert (rows - offset).tolist() == alone.permutation.tolist()
        centres = (image["boxes"][:, 0] + image["boxes"][:, 2])[alone.permutation]
        assert torch.all(centres[:-1] >= centres[1:])  # right to left
        offset += len(image["boxes"])


# ------------------------------------------------------------------------------------------- the decoder
def test_highway_cell_matches_a_hand_computation():
    decoder = DecoderRNN(torch.zeros(3, 1), input_dim=1, hidden_dim=1, dropout=0.0)
    with torch.no_grad():
        decoder.state_linearity.weight.copy_(torch.tensor([[0.5], [-1.0], [2.0], [0.25], [1.5]]))
        decoder.state_linearity.bias.copy_(torch.tensor([0.1, 0.0, -0.2, 0.0, 0.3]))
    x = [0.2, -0.4, 0.7, 1.1, -0.3, 0.9]
    h_prev, c_prev = 0.6, -0.8
    out, memory = decoder.highway_step(torch.tensor([x]), torch.tensor([[h_prev]]), torch.tensor([[c_prev]]))
    sigmoid = lambda value: 1.0 / (1.0 + math.exp(-value))  # noqa: E731
    s = [0.5 * h_prev + 0.1, -1.0 * h_prev, 2.0 * h_prev - 0.2, 0.25 * h_prev, 1.5 * h_prev + 0.3]
    i, f, g, o = sigmoid(x[0] + s[0]), sigmoid(x[1] + s[1]), math.tanh(x[2] + s[2]), sigmoid(x[3] + s[3])
    c = i * g + f * c_prev
    r = sigmoid(x[4] + s[4])
    expected = r * (o * math.tanh(c)) + (1 - r) * x[5]
    assert memory.item() == pytest.approx(c, abs=1e-6)
    assert out.item() == pytest.approx(expected, abs=1e-6)


def _sgb_decoder_loop(decoder: DecoderRNN, sequence, batch_sizes, targets=None):
    """SGB's per-step form: cat([row, embedding of the previous label]) through input_linearity."""
    state = torch.zeros(int(batch_sizes[0]), decoder.hidden_dim)
    memory, previous = torch.zeros_like(state), torch.zeros(int(batch_sizes[0]), dtype=torch.int64)
    dists, labels, start = [], [], 0
    for size in batch_sizes.tolist():
        step = torch.cat([sequence[start:start + size], decoder.obj_embed(previous[:size])], dim=1)
        state, memory = decoder.highway_step(decoder.input_linearity(step), state[:size], memory[:size])
        step_dists = decoder.out_obj(state)
        if targets is None:
            step_labels = F.softmax(step_dists, 1)[:, 1:].argmax(1) + 1
        else:
            step_labels = targets[start:start + size].clone()
            step_labels[step_labels == 0] = step_dists[step_labels == 0, 1:].argmax(1) + 1
        dists.append(step_dists)
        labels.append(step_labels)
        previous = step_labels + 1
        start += size
    return torch.cat(dists), torch.cat(labels)


def test_decoder_is_sgb_per_step_form_at_eval_and_uses_teacher_forcing_in_training():
    torch.manual_seed(0)
    decoder = DecoderRNN(torch.randn(NUM_CLASSES + 1, EMBED_DIM), input_dim=5, hidden_dim=4, dropout=0.0)
    batch_sizes = torch.tensor([3, 2, 2, 1])
    sequence = torch.randn(int(batch_sizes.sum()), 5)
    with torch.no_grad():
        dists, labels = decoder.eval()(sequence, batch_sizes)
        expected_dists, expected_labels = _sgb_decoder_loop(decoder, sequence, batch_sizes)
    torch.testing.assert_close(dists, expected_dists, rtol=1e-5, atol=1e-6)
    assert torch.equal(labels, expected_labels) and bool((labels >= 1).all())

    targets = torch.tensor([3, 0, 5, 1, 0, 2, 4, 8])
    with torch.no_grad():
        dists, labels = decoder.train()(sequence, batch_sizes, targets)
        expected_dists, expected_labels = _sgb_decoder_loop(decoder, sequence, batch_sizes, targets)
    torch.testing.assert_close(dists, expected_dists, rtol=1e-5, atol=1e-6)
    assert torch.equal(labels, expected_labels)
    assert labels[targets > 0].tolist() == targets[targets > 0].tolist() and bool((labels > 0).all())


def test_decoder_refuses_training_without_targets():
    decoder = DecoderRNN(torch.randn(4, 2), input_dim=3, hidden_dim=2, dropout=0.2).train()
    with pytest.raises(ValueError, match="target labels"):
        decoder(torch.randn(2, 3), torch.tensor([1, 1]))


# ------------------------------------------------------------------------------------ batch independence
def _tiny_motif_predictor(mode: str) -> MotifPredictor:
    torch.manual_seed(0)
    context = LSTMContext(mode, torch.randn(NUM_CLASSES, EMBED_DIM), torch.randn(NUM_CLASSES + 1, EMBED_DIM),
                          ROI_DIM, HIDDEN_DIM, obj_layers=2, rel_layers=1, dropout=0.2, nms_threshold=0.3)
    return MotifPredictor(context, HIDDEN_DIM, pooling_dim=16, union_channels=ROI_DIM, num_predicates=5,
                          pred_dist=torch.randn(NUM_CLASSES, NUM_CLASSES, 5), use_vision=True,
                          frequency_bias_dropout=0.0, recipe=RebalanceRecipe())


@pytest.mark.parametrize("mode", MODES)
def test_eval_outputs_of_an_image_do_not_depend_on_its_batch(mode):
    """An image's labels are identical alone and in a batch of 3; logits and relation scores agree to float
    rounding only: the batched matrix products have other row counts, and this CPU's BLAS rounds a row
    differently with the row count (bitwise equality holds when each image runs alone)."""
    predictor = _tiny_motif_predictor(mode).eval()
    images = random_images([5, 8, 3], seed=2)
    union = torch.randn(len(all_pairs([5, 8, 3])), ROI_DIM)
    with torch.no_grad():
        batched = predictor.object_context(context_inputs(images, mode))
        batched_logits = predictor.eval_logits(batched, all_pairs([5, 8, 3]), union)
        offset, pair_offset = 0, 0
        for image in images:
            count = len(image["boxes"])
            alone = predictor.object_context(context_inputs([image], mode))
            pairs = all_pairs([count])
            logits = predictor.eval_logits(alone, pairs, union[pair_offset:pair_offset + len(pairs)])
            assert torch.equal(alone.object_labels, batched.object_labels[offset:offset + count])
            torch.testing.assert_close(alone.object_logits, batched.object_logits[offset:offset + count],
                                       rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(logits, batched_logits[pair_offset:pair_offset + len(pairs)],
                                       rtol=1e-5, atol=1e-5)
            offset += count
            pair_offset += len(pairs)


def test_sgdet_test_labels_are_sgb_decoder_nms_in_sequence_order():
    predictor = _tiny_motif_predictor("sgdet").eval()
    image = random_images([6], seed=3)[0]
    boxes = torch.tensor([[12.0 * k, 0.0, 12.0 * k + 50, 50.0] for k in range(6)])
    image["boxes"], image["per_class"] = boxes, boxes[:, None, :].expand(-1, NUM_CLASSES, -1).clone()
    with torch.no_grad():
        context = predictor.object_context(context_inputs([image], "sgdet"))
    overlapping = (box_iou_legacy(boxes, boxes) >= 0.3).numpy()
    order = leftright_order(boxes, [6]).permutation.tolist()
    table = F.softmax(context.object_logits, 1).numpy()[order]
    table[:, 0] = 0.0
    expected = np.zeros(6, dtype=np.int64)
    for _ in range(6):  # SGB's decoder NMS, on the rows in sequence order
        row, cls = np.unravel_index(table.argmax(), table.shape)
        expected[order[row]] = cls
        table[overlapping[order[row]][order], cls] = 0.0
        table[row] = -1.0
    assert context.object_labels.tolist() == expected.tolist()
    assert context.object_labels.tolist() != (context.object_logits[:, 1:].argmax(1) + 1).tolist()


# ------------------------------------------------------------------------ the model on a tiny SynthVG
def _config(tiny_synthvg, tmp_path, mode, *extra):
    return tiny_synthetic_config(SYNTHETIC_MOTIFS_CONFIG, tiny_synthvg, str(tmp_path / "out"), mode, *extra)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_trains_and_tests_in_every_mode(tiny_synthvg, tmp_path, mode):
    cfg = _config(tiny_synthvg, tmp_path, mode)
    torch.manual_seed(0)
    model = build_model(cfg)
    predictor = model.relation_head.predictor
    assert isinstance(predictor, MotifPredictor) and (predictor.context.decoder_rnn is None) == (mode == "predcls")
    losses = train_step_then_test(model, cfg)
    assert set(losses) == {"loss_rel", "loss_refine_obj"}
    assert (float(losses["loss_refine_obj"].detach()) > 0) == (mode != "predcls")


@pytest.mark.slow
def test_without_vision_the_predictor_reads_no_union_features(tiny_synthvg, tmp_path):
    cfg = _config(tiny_synthvg, tmp_path, "predcls", "MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION", "False",
                  "MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "False")
    model = build_model(cfg).train()
    assert model.relation_head.union_features is None
    assert model.relation_head.predictor.general_classifier.freq_bias is None
    sum(model(*first_batch(cfg)).values()).backward()


# ------------------------------------------------------------------------------------ SGB names, options
def test_from_sgb_state_maps_sgb_names_and_accepts_the_causal_yaml_buffers():
    predictor = _tiny_motif_predictor("sgcls")
    ours = predictor.state_dict()
    sgb = {}
    for key, value in ours.items():
        key = key.replace("context.", "context_layer.", 1).replace("general_classifier.", "")
        sgb[key] = value.clone()
    for name in ("untreated_dcd_feat", "untreated_obj_feat", "untreated_edg_feat"):
        sgb[f"context_layer.{name}"] = torch.ones(3)
    mapped = MotifPredictor.from_sgb_state(sgb, mode="sgcls")
    assert mapped.keys() == ours.keys() and all(torch.equal(mapped[key], ours[key]) for key in ours)
    predcls_keys = MotifPredictor.from_sgb_state(sgb, mode="predcls").keys()
    assert not any(".decoder_rnn." in key for key in predcls_keys)
    clean = MotifPredictor.from_sgb_state(sgb, recipe_prefix="clean_classifier")
    assert "clean_classifier.rel_compress.weight" in clean

    with pytest.raises(ValueError, match=r"no counterpart in ours: attention\.weight"):
        MotifPredictor.from_sgb_state({**sgb, "attention.weight": torch.zeros(1)})
    without_decoder = {key: value for key, value in sgb.items() if ".decoder_rnn." not in key}
    with pytest.raises(ValueError, match=r"does not fill: context\.decoder_rnn\."):
        MotifPredictor.from_sgb_state(without_decoder, mode="sgdet")


def _tiny_cfg(*extra: str):
    return load_config(SYNTHETIC_MOTIFS_CONFIG, [*TINY_MODEL_OPTS, *extra])


@pytest.mark.parametrize("key, value", [("TRANSFORMER.NUM_HEAD", "2"), ("CAUSAL.FUSION_TYPE", "gate")])
def test_an_option_motifs_does_not_read_is_refused_naming_the_key(key, value):
    cfg = _tiny_cfg(f"MODEL.ROI_RELATION_HEAD.{key}", value)
    with pytest.raises(ValueError, match=rf"MODEL.ROI_RELATION_HEAD.{key} = .*not an option of "
                                         r"MODEL.ROI_RELATION_HEAD.PREDICTOR 'MotifPredictor'"):
        build_predictor(cfg, parts=None)


def test_the_causal_yaml_effect_analysis_is_accepted_and_zero_layers_refused():
    assert registry.inapplicable_options(_tiny_cfg("MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS", "True"),
                                         "MotifPredictor") == []
    with pytest.raises(ValueError, match="CONTEXT_REL_LAYER must be >= 1"):
        build_predictor(_tiny_cfg("MODEL.ROI_RELATION_HEAD.CONTEXT_REL_LAYER", "0"), parts=None)

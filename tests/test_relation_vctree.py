"""SGB's VCTree: the trees (hand cases, ties, lockstep over a batch), the level-batched tree LSTMs against
hand computation and the node-at-a-time reference, the context against the SGB-style reference, the TDE
counterfactual and moving averages, the predictor's logits and tree-score loss, SGB-state import, refused
keys, batch invariance, and training and testing in the three modes on SynthVG (the two-stage recipe:
tests/test_relation_training.py, on every context)."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baseline_testing import add_sgb_vctree_decoder_aliases, sgb_vctree_names
from relation_testing import ROOT, TINY_RELATION_OPTS, mode_opts
from tool_loading import load_tool
from vctree_loop_reference import binary_parents, binary_tree, greedy_tree, reference_context, tree_lstm_stack
from rebalance_hca.config import load_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.modeling import build_model
from rebalance_hca.modeling.relation_head.box_geometry import encode_box_info
from rebalance_hca.modeling.relation_head.context import ContextInputs
from rebalance_hca.modeling.relation_head.context.tree_lstm import (DownTreeLSTM, MultiLayerTreeLSTM, TreeLabelDecoder,
                                                                    UpTreeLSTM)
from rebalance_hca.modeling.relation_head.context.counterfactual import AVERAGE_RATIO
from rebalance_hca.modeling.relation_head.context.vctree import VCTreeContext, overlap_statistics, pair_score_loss
from rebalance_hca.modeling.relation_head.context.vctree_forest import (BinaryForest, MultiwayTrees, binarize,
                                                                        grow_trees, tree_schedule)
from rebalance_hca.modeling.relation_head.predictors import RebalanceRecipe, VCTreePredictor
from rebalance_hca.modeling.relation_head.sampling import RelationPairSampler

VCTREE_CONFIG = os.path.join(ROOT, "configs", "synthetic", "relation_VCTree_R18_FPN.yaml")
TINY_VCTREE_OPTS = [value for key, value in zip(TINY_RELATION_OPTS[::2], TINY_RELATION_OPTS[1::2])
                    if ".TRANSFORMER." not in key for value in (key, value)]
"""The tiny relation options without the Transformer's (VCTree refuses them)."""
MODES = ["predcls", "sgcls", "sgdet"]


def tiny_vctree_config(data_dir: str, output_dir: str, mode: str = "predcls", *extra: str):
    return load_config(VCTREE_CONFIG, [*TINY_VCTREE_OPTS, "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR",
                                       os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir, *mode_opts(mode), *extra])


# ---------------------------------------------------------------------------------------------- trees
def test_equal_scores_hang_every_node_under_the_first_root_in_index_order():
    trees = grow_trees([torch.zeros(4, 4)])
    assert int(trees.root[0]) == 0
    assert trees.parent[0].tolist() == [-1, 0, 0, 0] and trees.rank[0].tolist() == [0, 1, 2, 3]
    forest = binarize(trees)  # left child, then a chain of right siblings
    assert forest.parent.tolist() == [-1, 0, 1, 2]
    assert forest.left.tolist() == [1, -1, -1, -1] and forest.right.tolist() == [-1, 2, 3, -1]
    assert forest.depth.tolist() == [0, 1, 2, 3]


def test_a_chain_of_scores_grows_a_chain():
    scores = torch.zeros(4, 4)
    scores[0, 1] = scores[1, 2] = scores[2, 3] = 1.0
    trees = grow_trees([scores])
    assert trees.parent[0].tolist() == [-1, 0, 1, 2]
    forest = binarize(trees)
    assert forest.parent.tolist() == [-1, 0, 1, 2] and forest.right.tolist() == [-1, -1, -1, -1]


def test_root_by_row_mean_then_ties_go_to_the_earliest_placed_parent_then_the_smallest_child():
    scores = torch.zeros(4, 4)
    scores[2] = torch.tensor([0.9, 0.5, 1.0, 0.5])  # row mean 0.725: node 2 is the root
    scores[0, 1] = scores[0, 3] = scores[1, 3] = 0.5  # ties with the root's row
    trees = grow_trees([scores])
    assert int(trees.root[0]) == 2
    # 0 first (0.9); then 1 ties under 2 and 0: 2 was placed first; then 3 ties under 2, 0, 1: again 2
    assert trees.parent[0].tolist() == [2, 2, -1, 2] and trees.rank[0].tolist() == [1, 2, 0, 3]
    forest = binarize(trees)
    assert forest.parent.tolist() == [2, 0, -1, 1] and forest.depth.tolist() == [1, 2, 0, 3]


def test_binarize_makes_the_first_child_left_and_later_children_right_siblings():
    # root 0 with children attached in the order 2, 1; node 3 under 2
    trees = MultiwayTrees([4], torch.tensor([0]), torch.tensor([[-1, 0, 0, 2]]), torch.tensor([[0, 2, 1, 3]]))
    forest = binarize(trees)
    assert forest.left.tolist() == [2, -1, 3, -1] and forest.right.tolist() == [-1, -1, 1, -1]
    assert forest.parent.tolist() == [-1, 2, 0, 2] and forest.depth.tolist() == [0, 2, 1, 2]
    schedule = tree_schedule(forest)
    assert [level.tolist() for level in schedule.levels] == [[0], [2], [1, 3]]
    assert [slots.tolist() for slots in schedule.parent_slot] == [[], [0], [0, 0]]
    assert [slots.tolist() for slots in schedule.left_slot] == [[0], [1], [0, 0]]  # 1 = none in a level of 1
    assert [slots.tolist() for slots in schedule.right_slot] == [[1], [0], [0, 0]]
    assert torch.equal(torch.cat(schedule.levels)[schedule.node_position], torch.arange(4))


def _random_scores(sizes: list[int], generator: torch.Generator, levels: int | None = None) -> list[torch.Tensor]:
    scores = [torch.rand(size, size, generator=generator) for size in sizes]
    return [torch.floor(s * levels) / levels for s in scores] if levels else scores


@pytest.mark.parametrize("levels", [None, 2, 3])
def test_lockstep_trees_equal_per_image_trees_and_the_literal_greedy_search(levels):
    generator = torch.Generator().manual_seed(levels or 0)
    sizes = [0, 1, 2, 5, 9, 3, 12]
    scores = _random_scores(sizes, generator, levels)
    batched = binarize(grow_trees(scores))
    offsets = np.cumsum([0, *sizes[:-1]])
    for size, offset, image_scores in zip(sizes, offsets, scores):
        alone = binarize(grow_trees([image_scores]))
        part = batched.parent[offset:offset + size]
        assert torch.equal(torch.where(part >= 0, part - offset, part), alone.parent)
        if size:
            assert alone.parent.tolist() == binary_parents(binary_tree(greedy_tree(image_scores)), size)


def test_non_finite_scores_are_refused():
    with pytest.raises(ValueError, match="not finite"):
        grow_trees([torch.tensor([[0.0, float("nan")], [0.0, 0.0]])])


# ---------------------------------------------------------------------------------------------- tree LSTMs
def _forest(parent: list[int]) -> BinaryForest:
    """A one-image binary forest from binary parents, a child being left if it is its parent's first child
    in index order."""
    count = len(parent)
    left, right = [-1] * count, [-1] * count
    for child, node in enumerate(parent):
        if node >= 0:
            if left[node] < 0:
                left[node] = child
            else:
                right[node] = child
    depth = [0] * count
    for node in range(count):
        walk = node
        while parent[walk] >= 0:
            depth[node] += 1
            walk = parent[walk]
    return BinaryForest(torch.tensor(parent), torch.tensor(left), torch.tensor(right), torch.tensor(depth),
                        torch.zeros(count, dtype=torch.int64))


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def test_one_up_cell_matches_a_hand_computation():
    cell = UpTreeLSTM(in_dim=1, hidden_dim=1)
    with torch.no_grad():
        cell.px.weight.fill_(0.5)
        cell.px.bias.fill_(0.1)
        cell.ioffux.weight.copy_(torch.tensor([[0.3], [-0.2], [0.4], [0.6], [0.8], [-0.5]]))
        cell.ioffux.bias.copy_(torch.tensor([0.0, 0.1, 0.0, 0.0, -0.1, 0.2]))
        cell.ioffuh_left.weight.copy_(torch.tensor([[0.7], [0.1], [-0.3], [0.2], [0.5], [0.4]]))
        cell.ioffuh_right.weight.copy_(torch.tensor([[-0.6], [0.3], [0.2], [-0.4], [0.1], [0.9]]))
    x = [0.5, -1.0, 2.0]  # root 0 with left child 1 and right child 2
    schedule = tree_schedule(_forest([-1, 0, 0]))
    output = cell(torch.tensor(x).view(3, 1), schedule).view(-1).tolist()

    def node(xv, left, right):
        w = [0.3, -0.2, 0.4, 0.6, 0.8, -0.5]
        b = [0.0, 0.1, 0.0, 0.0, -0.1, 0.2]
        wl, bl = [0.7, 0.1, -0.3, 0.2, 0.5, 0.4], [0.0, 0.0, 0.5, 0.5, 0.0, 0.0]
        wr, br = [-0.6, 0.3, 0.2, -0.4, 0.1, 0.9], [0.0, 0.0, 0.5, 0.5, 0.0, 0.0]
        z = [w[k] * xv + b[k] + wl[k] * left[1] + bl[k] + wr[k] * right[1] + br[k] for k in range(6)]
        c = (_sigmoid(z[0]) * math.tanh(z[4]) + _sigmoid(z[2]) * left[0] + _sigmoid(z[3]) * right[0])
        h = _sigmoid(z[1]) * math.tanh(c)
        out = _sigmoid(z[5]) * h + (1 - _sigmoid(z[5])) * (0.5 * xv + 0.1)
        return c, out

    leaf1, leaf2 = node(x[1], (0, 0), (0, 0)), node(x[2], (0, 0), (0, 0))
    root = node(x[0], leaf1, leaf2)
    assert output == pytest.approx([root[1], leaf1[1], leaf2[1]], abs=1e-6)


def test_one_down_cell_matches_a_hand_computation():
    cell = DownTreeLSTM(in_dim=1, hidden_dim=1)
    with torch.no_grad():
        cell.px.weight.fill_(-0.3)
        cell.px.bias.fill_(0.2)
        cell.iofux.weight.copy_(torch.tensor([[0.5], [0.4], [-0.7], [0.9], [0.3]]))
        cell.iofux.bias.zero_()
        cell.iofuh.weight.copy_(torch.tensor([[0.2], [-0.1], [0.6], [0.3], [-0.8]]))
    x = [1.5, -0.5]  # root 0, child 1
    output = cell(torch.tensor(x).view(2, 1), tree_schedule(_forest([-1, 0]))).view(-1).tolist()

    def node(xv, parent):
        w, wh, bh = [0.5, 0.4, -0.7, 0.9, 0.3], [0.2, -0.1, 0.6, 0.3, -0.8], [0.0, 0.0, 1.0, 0.0, 0.0]
        z = [w[k] * xv + wh[k] * parent[1] + bh[k] for k in range(5)]
        c = _sigmoid(z[0]) * math.tanh(z[3]) + _sigmoid(z[2]) * parent[0]
        out = _sigmoid(z[4]) * _sigmoid(z[1]) * math.tanh(c) + (1 - _sigmoid(z[4])) * (-0.3 * xv + 0.2)
        return c, out

    root = node(x[0], (0, 0))
    assert output == pytest.approx([root[1], node(x[1], root)[1]], abs=1e-6)


def test_initialisation_is_block_orthogonal_with_forget_biases():
    up, down = UpTreeLSTM(in_dim=12, hidden_dim=4), DownTreeLSTM(in_dim=3, hidden_dim=4)
    for block in up.ioffux.weight.split(4):  # (4, 12): orthonormal rows
        assert torch.allclose(block @ block.T, torch.eye(4), atol=1e-5)
    for block in down.iofux.weight.split(4):  # (4, 3): orthonormal columns
        assert torch.allclose(block.T @ block, torch.eye(3), atol=1e-5)
    assert up.ioffuh_left.bias.tolist() == [0.0] * 8 + [0.5] * 8 + [0.0] * 8
    assert down.iofuh.bias.tolist() == [0.0] * 8 + [1.0] * 4 + [0.0] * 8
    assert not up.px.bias.any() and not up.ioffux.bias.any() and not down.iofux.bias.any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_level_batched_tree_lstm_equals_the_node_at_a_time_reference(seed):
    """Equal to 1e-6 (float32; the same products grouped differently, not bitwise)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sizes = [1, 6, 13, 4]
    scores = _random_scores(sizes, generator, levels=3 if seed else None)
    forest = binarize(grow_trees(scores))
    schedule = tree_schedule(forest)
    stack = MultiLayerTreeLSTM(in_dim=7, hidden_dim=6, num_layers=2, dropout=0.3).eval()
    features = torch.randn(sum(sizes), 7, generator=generator)
    with torch.no_grad():
        batched = stack(features, schedule)
        reference = torch.cat([tree_lstm_stack(stack, binary_tree(greedy_tree(image_scores)), image_features)
                               for image_scores, image_features in zip(scores, features.split(sizes))])
    assert (batched - reference).abs().max() < 1e-6


def test_training_dropout_is_one_mask_per_image_pass_and_layer():
    stack = MultiLayerTreeLSTM(in_dim=3, hidden_dim=8, num_layers=2, dropout=0.5).train()
    schedule = tree_schedule(binarize(grow_trees([torch.zeros(5, 5), torch.zeros(4, 4)])))
    output = stack(torch.randn(9, 3), schedule)
    # the last layer's outputs are masked: within an image every node shares the zero columns of each pass
    for rows in (output[:5], output[5:]):
        zero_columns = rows == 0
        assert torch.equal(zero_columns, zero_columns[:1].expand_as(zero_columns))
    assert MultiLayerTreeLSTM(in_dim=3, hidden_dim=8, num_layers=1, dropout=0.5).dropout == 0.0


# ---------------------------------------------------------------------------------------------- context
NUM_CLASSES, EMBED_DIM, IN_CHANNELS, HIDDEN = 9, 6, 20, 10


def _boxes(count: int, generator: torch.Generator) -> torch.Tensor:
    corner = (torch.rand(count, 2, generator=generator) * 60).round()
    return torch.cat([corner, corner + 1 + (torch.rand(count, 2, generator=generator) * 40).round()], dim=1)


def _inputs(mode: str, sizes: list[int], seed: int = 0) -> ContextInputs:
    generator = torch.Generator().manual_seed(seed)
    boxes = [_boxes(count, generator) for count in sizes]
    total = sum(sizes)
    adjacency = []
    for count in sizes:
        related = torch.rand(count, count, generator=generator) < 0.3
        adjacency.append((related | related.T).long())
    return ContextInputs(torch.randn(total, IN_CHANNELS, generator=generator),
                         torch.cat([encode_box_info(b, (100, 120)) for b in boxes]), sizes,
                         labels=torch.randint(1, NUM_CLASSES, (total,), generator=generator) if mode == "predcls" else None,
                         detector_logits=None if mode == "predcls" else 3 * torch.randn(total, NUM_CLASSES, generator=generator),
                         boxes=torch.cat(boxes), image_sizes=[(100, 120)] * len(sizes), relation_adjacency=adjacency)


def _context(mode: str, weights: str = "informative", layers: int = 2, effect_analysis: bool = True) -> VCTreeContext:
    torch.manual_seed(0)
    context = VCTreeContext(mode, torch.randn(NUM_CLASSES, EMBED_DIM), torch.randn(NUM_CLASSES + 1, EMBED_DIM),
                            torch.log_softmax(torch.randn(NUM_CLASSES, NUM_CLASSES, 4), dim=2), IN_CHANNELS, HIDDEN,
                            layers, layers, 0.2, effect_analysis)
    with torch.no_grad():
        for module in context.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
        if weights == "informative":
            context.bi_freq_prior.weight.normal_(0, 2.0)
            context.vision_prior.weight.normal_(0, 0.5)
        elif weights == "ties":
            context.bi_freq_prior.weight.zero_()
    return context.eval()


@pytest.mark.parametrize("weights", ["initial", "informative", "ties"])
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_context_equals_the_sgb_style_reference(mode, weights):
    context = _context(mode, weights)
    inputs = _inputs(mode, [3, 7, 1, 0, 12])
    with torch.no_grad():
        output, reference = context(inputs), reference_context(context, inputs)
    assert torch.equal(output.forest.parent, reference.binary_parents)
    assert torch.equal(output.object_labels, reference.object_labels)
    assert (output.object_logits - reference.object_logits).abs().max() < 1e-5
    assert (output.edge_context - reference.edge_context).abs().max() < 1e-5
    for ours, theirs in zip(output.pair_score_logits, reference.pair_score_logits):
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    if weights == "ties":  # all scores equal: every tree is the root 0 with a chain of right siblings
        assert output.forest.depth.tolist()[3:10] == list(range(7))


def test_overlap_statistics_of_two_boxes():
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 5.0, 24.0, 14.0]])
    statistics = overlap_statistics(boxes)
    inter = torch.tensor([[100.0, 25.0], [25.0, 200.0]])
    iou = inter / (torch.tensor([[100.0], [200.0]]) + torch.tensor([[100.0, 200.0]]) - inter)
    expected_first = [2, 125 / 1024 ** 2, float(iou[0].sum()), 125 / 1024 ** 2 / 2, float(iou[0].sum()) / 2,
                      81 / 1024 ** 2]
    assert statistics[0].tolist() == pytest.approx(expected_first, rel=1e-6)
    assert statistics[1, 5].item() == pytest.approx(19 * 9 / 1024 ** 2)


def test_counterfactual_replaces_the_decoder_and_edge_inputs_and_keeps_the_trees():
    context = _context("sgcls")
    with torch.no_grad():
        for name in ("untreated_dcd_feat", "untreated_obj_feat", "untreated_edg_feat"):
            getattr(context, name).normal_()
    inputs = _inputs("sgcls", [4, 6])
    captured = {}
    hooks = [module.register_forward_hook(lambda _, args, out, name=name: captured.setdefault(name, []).append(
        (args[0], out))) for name, module in (("obj", context.obj_ctx_rnn), ("decoder", context.decoder_rnn))]
    with torch.no_grad():
        factual, counterfactual = context(inputs), context(inputs, counterfactual=True)
        obj_ctx = captured["obj"][1][1]
        assert torch.equal(obj_ctx, captured["obj"][0][1])  # obj_ctx stays factual
        decoder_input = captured["decoder"][1][0]
        assert torch.equal(decoder_input, context.untreated_dcd_feat.expand(10, -1))
        schedule = tree_schedule(factual.forest)
        expected_edges = context.edge_ctx_rnn(torch.cat([context.untreated_edg_feat.expand(10, -1), obj_ctx], 1),
                                              schedule)
    for hook in hooks:
        hook.remove()
    assert torch.equal(counterfactual.forest.parent, factual.forest.parent)
    assert torch.equal(counterfactual.edge_context, expected_edges)
    assert not torch.equal(counterfactual.object_logits, factual.object_logits)
    with pytest.raises(ValueError, match="eval mode and CAUSAL.EFFECT_ANALYSIS"):
        _context("sgcls", effect_analysis=False)(inputs, counterfactual=True)
    with pytest.raises(ValueError, match="eval mode"):
        context.train()(inputs, counterfactual=True)


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_training_updates_the_untreated_moving_averages(mode):
    context = _context(mode).train()
    inputs = _inputs(mode, [4, 6])
    captured = {}
    for name, module in (("obj", context.obj_ctx_rnn), ("edge", context.edge_ctx_rnn)):
        module.register_forward_hook(lambda _, args, out, name=name: captured.__setitem__(name, args[0].detach()))
    before = context.untreated_dcd_feat.clone()
    context(inputs)
    ratio = AVERAGE_RATIO
    assert torch.allclose(context.untreated_obj_feat, ratio * captured["obj"].mean(0), atol=1e-7)
    edge_part = captured["edge"][:, :EMBED_DIM + IN_CHANNELS]
    assert torch.allclose(context.untreated_edg_feat, ratio * edge_part.mean(0), atol=1e-7)
    if mode == "predcls":  # VCTree updates the decoder average only when it decodes
        assert torch.equal(context.untreated_dcd_feat, before)
    else:
        decoder_input = torch.cat([captured["obj"], captured["edge"][:, EMBED_DIM + IN_CHANNELS:]], dim=1)
        expected = before
        for image_input in decoder_input.split([4, 6]):  # once per image, as SGB
            expected = expected * (1 - ratio) + ratio * image_input.mean(0)
        assert not torch.allclose(expected, before)
        # obj_ctx is the edge input's last H columns; the decoder saw [obj_pre, obj_ctx]
        assert torch.allclose(context.untreated_dcd_feat, expected, atol=1e-7)


def test_decoder_samples_the_passed_label_in_training_and_commits_the_argmax():
    torch.manual_seed(0)
    decoder = TreeLabelDecoder(torch.randn(NUM_CLASSES + 1, EMBED_DIM), in_dim=5, hidden_dim=8, dropout=0.0)
    schedule = tree_schedule(binarize(grow_trees([torch.zeros(6, 6)])))
    features = torch.randn(6, 5)
    evaluated = [decoder.eval()(features, schedule) for _ in range(2)]
    assert torch.equal(evaluated[0][0], evaluated[1][0])
    trained = [decoder.train()(features, schedule) for _ in range(8)]
    assert any(not torch.equal(logits, trained[0][0]) for logits, _ in trained)  # sampled labels feed the children
    for logits, labels in trained:
        assert torch.equal(labels, F.softmax(logits, 1)[:, 1:].argmax(1) + 1)


def test_pair_score_loss_is_the_image_mean_of_bce_over_all_entries():
    logits = [torch.tensor([[0.5, -1.0], [2.0, 0.0]]), torch.tensor([[1.5]]), torch.zeros(0, 0)]
    targets = [torch.tensor([[0, 1], [1, 0]]), torch.tensor([[0]]), torch.zeros(0, 0, dtype=torch.long)]
    expected = (F.binary_cross_entropy_with_logits(logits[0], targets[0].float())
                + F.binary_cross_entropy_with_logits(logits[1], targets[1].float())) / 2
    assert torch.allclose(pair_score_loss(logits, targets), expected)


def test_relation_adjacency_of_gt_boxes_and_of_detections():
    sampler = RelationPairSampler(fg_iou_threshold=0.5)
    relation = torch.tensor([[0, 3, 0], [0, 0, 0], [1, 0, 0]])
    assert sampler.gt_box_adjacency(relation).tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 0]]
    gt_boxes = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    gt_labels = torch.tensor([1, 2, 1])
    # detections: two on GT 0 (label 1), one on GT 1 (label 2), one on GT 1 with the wrong label, one on GT 2
    detections = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [20, 20, 30, 30], [40, 40, 50, 50]])
    labels = torch.tensor([1, 1, 2, 3, 1])
    adjacency = sampler.detection_adjacency(detections, labels, gt_boxes, gt_labels, relation)
    expected = torch.zeros(5, 5, dtype=torch.long)
    for subject, object_ in ((0, 2), (1, 2), (4, 0), (4, 1)):  # GT 0 -> GT 1 and GT 2 -> GT 0
        expected[subject, object_] = expected[object_, subject] = 1
    assert torch.equal(adjacency, expected)


# ---------------------------------------------------------------------------------------------- predictor
def _predictor(mode: str = "sgcls", pooling: int = 12, effect_analysis: bool = False) -> VCTreePredictor:
    context = _context(mode, effect_analysis=effect_analysis)
    torch.manual_seed(1)
    return VCTreePredictor(context, HIDDEN, pooling, IN_CHANNELS, 5,
                           torch.log_softmax(torch.randn(NUM_CLASSES, NUM_CLASSES, 5), 2), 0.0, RebalanceRecipe()).eval()


def test_relation_logits_are_ctx_compress_of_the_gated_pair_plus_the_frequency_bias():
    predictor = _predictor(pooling=12)  # pooling != D: up_dim maps the union features
    inputs = _inputs("sgcls", [4, 3])
    pairs = torch.tensor([[0, 1], [2, 0], [4, 6], [5, 4]])
    union = torch.randn(4, IN_CHANNELS)
    with torch.no_grad():
        context = predictor.object_context(inputs)
        logits = predictor.relation_logits(context, pairs, union)
        edge = F.relu(predictor.post_emb(context.edge_context))
        pair_rep = torch.cat([edge[pairs[:, 0], :HIDDEN], edge[pairs[:, 1], HIDDEN:]], 1)
        classifier = predictor.general_classifier
        labels = context.object_labels
        bias = classifier.freq_bias.obj_baseline.weight[labels[pairs[:, 0]] * NUM_CLASSES + labels[pairs[:, 1]]]
        expected = classifier.ctx_compress(predictor.post_cat(pair_rep) * predictor.up_dim(union)) + bias
    assert torch.allclose(logits, expected, atol=1e-6)
    output = predictor.train().training_outputs(predictor.object_context(inputs), pairs, union, torch.zeros(4).long())
    assert set(output.losses) == {"binary_loss"} and output.losses["binary_loss"].requires_grad


def _sgb_state(predictor: VCTreePredictor, mode: str) -> dict[str, torch.Tensor]:
    """The state SGB's VCTreePredictor would save for ``predictor``'s weights: SGB's names, the decoder's
    duplicate registrations, the decoder SGB builds in PredCls too, and the untreated averages of SGB's yaml."""
    state = sgb_vctree_names(predictor.state_dict())
    decoder = "context_layer.decoder_rnn."
    if mode == "predcls":
        state[f"{decoder}obj_embed.weight"] = torch.randn(NUM_CLASSES + 1, EMBED_DIM)
        state[f"{decoder}out.weight"], state[f"{decoder}out.bias"] = torch.randn(NUM_CLASSES, HIDDEN), torch.randn(NUM_CLASSES)
        state[f"{decoder}decoderLSTM.px.weight"] = torch.randn(HIDDEN, 1)
    add_sgb_vctree_decoder_aliases(state)
    for name, size in (("untreated_dcd_feat", 3), ("untreated_obj_feat", 2), ("untreated_edg_feat", 1)):
        state[f"context_layer.{name}"] = torch.randn(size)
    return state


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_from_sgb_state_loads_an_sgb_state_whole(mode):
    source = _predictor(mode, pooling=IN_CHANNELS)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.add_(torch.randn_like(parameter))
    state = VCTreePredictor.from_sgb_state(_sgb_state(source, mode), mode=mode)
    target = _predictor(mode, pooling=IN_CHANNELS)
    target.load_state_dict(state, strict=True)
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    clean = VCTreePredictor.from_sgb_state(_sgb_state(source, mode), recipe_prefix="clean_classifier", mode=mode)
    assert "clean_classifier.ctx_compress.weight" in clean and not any(k.startswith("general_") for k in clean)
    if mode == "sgcls":  # without a mode, the decoder is mapped because the state has it
        assert VCTreePredictor.from_sgb_state(_sgb_state(source, mode)).keys() == state.keys()


def test_from_sgb_state_names_what_it_cannot_map_and_what_it_does_not_fill():
    state = _sgb_state(_predictor("sgcls"), "sgcls")
    broken = dict(state)
    broken["context_layer.no_such_layer.weight"] = torch.zeros(1)
    broken["attribute_head.weight"] = torch.zeros(1)
    del broken["post_cat.bias"], broken["context_layer.obj_ctx_rnn.multi_layer_lstm.1.treeLSTM_backward.treeLSTM.px.weight"]
    broken["context_layer.decoder_rnn.decoderLSTM.embed_out_layer.bias"] = torch.ones(NUM_CLASSES)
    with pytest.raises(ValueError) as error:
        VCTreePredictor.from_sgb_state(broken, mode="sgcls")
    message = str(error.value)
    for name in ("attribute_head.weight", "context.no_such_layer.weight", "post_cat.bias",
                 "context.obj_ctx_rnn.layers.1.down.px.weight", "decoderLSTM.embed_out_layer.bias"):
        assert name in message
    without_decoder = {key: value for key, value in state.items() if ".decoder_rnn." not in key}
    with pytest.raises(ValueError, match="context.decoder_rnn.cell.px.weight"):
        VCTreePredictor.from_sgb_state(without_decoder, mode="sgdet")


@pytest.mark.parametrize("overrides, message", [
    (["MODEL.ROI_RELATION_HEAD.PREDICT_USE_VISION", "False"], "PREDICT_USE_VISION = False: not an option"),
    (["MODEL.ROI_RELATION_HEAD.PREDICT_USE_BIAS", "False"], "PREDICT_USE_BIAS = False: not an option"),
    (["MODEL.ROI_RELATION_HEAD.TRANSFORMER.OBJ_LAYER", "2"], "TRANSFORMER.OBJ_LAYER = 2: not an option"),
    (["MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "33"], "CONTEXT_HIDDEN_DIM must be even"),
    (["MODEL.ROI_RELATION_HEAD.CONTEXT_REL_LAYER", "0"], "CONTEXT_REL_LAYER must be at least 1"),
])
def test_inapplicable_or_bad_keys_are_refused(tiny_synthvg, tmp_path, overrides, message):
    cfg = tiny_vctree_config(tiny_synthvg, str(tmp_path / "out"), "predcls", *overrides)
    with pytest.raises(ValueError, match=message):
        build_model(cfg)


# ---------------------------------------------------------------------------------------------- batch invariance
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_eval_outputs_of_an_image_do_not_depend_on_its_batch(mode):
    """The trees and labels are identical; the numbers agree to float rounding, not bitwise: every image's
    computation is its own (per-image scores and trees, row-wise layers), but the BLAS rounds a Linear
    layer's row differently with the number of rows (score_sub, 10 -> 10, on 16 rows and on 8 differs by
    1.2e-7). The batch-invariant test loop (one image per forward) makes test outputs bitwise equal."""
    predictor = _predictor(mode, pooling=IN_CHANNELS)
    together = _inputs(mode, [5, 8, 3], seed=3)
    alone = _inputs(mode, [5, 8, 3], seed=3)
    first = slice(5, 13)
    alone = ContextInputs(alone.roi_features[first], alone.box_info[first], [8],
                          None if alone.labels is None else alone.labels[first],
                          None if alone.detector_logits is None else alone.detector_logits[first],
                          boxes=alone.boxes[first], image_sizes=[(100, 120)])
    pairs = torch.tensor([[0, 1], [3, 2], [7, 0]])
    union = torch.randn(3, IN_CHANNELS)
    with torch.no_grad():
        batch_context, alone_context = predictor.object_context(together), predictor.object_context(alone)
        batch_logits = predictor.eval_logits(batch_context, pairs + 5, union)
        alone_logits = predictor.eval_logits(alone_context, pairs, union)
    assert torch.equal(batch_context.object_labels[first], alone_context.object_labels)
    batch_parents = batch_context.forest.parent[first]
    assert torch.equal(torch.where(batch_parents >= 0, batch_parents - 5, -1), alone_context.forest.parent)
    for batched, single in ((batch_context.object_logits[first], alone_context.object_logits),
                            (batch_context.edge_context[first], alone_context.edge_context),
                            (batch_logits, alone_logits)):
        assert torch.allclose(batched, single, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- SynthVG
def _batch(cfg, split: str = "train"):
    images, targets, _ = next(iter(make_data_loader(cfg, split)))
    return images, targets


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_trains_and_tests_in_every_mode(tiny_synthvg, tmp_path, mode):
    # CAUSAL.EFFECT_ANALYSIS, set by SGB's yaml for every predictor, is accepted (VCTree keeps no averages)
    cfg = tiny_vctree_config(tiny_synthvg, str(tmp_path / "out"), mode, "MODEL.ROI_RELATION_HEAD.CAUSAL.EFFECT_ANALYSIS",
                             "True")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images, targets = _batch(cfg)
    losses = model(images, targets)
    assert set(losses) == {"loss_rel", "loss_refine_obj", "binary_loss"}
    assert all(torch.isfinite(value) for value in losses.values()) and losses["binary_loss"].requires_grad
    if mode != "sgdet":  # SGDet on an untrained detector: no detection matches a GT box, the target is all 0
        assert float(losses["binary_loss"]) > 0
    sum(losses.values()).backward()
    head = model.relation_head
    missing = [name for name, p in head.named_parameters() if p.grad is None]
    assert missing == []
    assert not any(name.startswith("untreated_") for name, _ in head.predictor.context.named_buffers())
    model.eval()
    test_images, test_targets = _batch(cfg, "test")
    with torch.no_grad():
        predictions = model(test_images, test_targets)
    for prediction in predictions:
        count = len(prediction["boxes"])
        assert prediction["rel_pair_idxs"].shape == (count * (count - 1), 2)
        assert torch.all(prediction["triplet_scores"][:-1] >= prediction["triplet_scores"][1:])


TRAIN = load_tool("relation_train_net")


def _args(data_dir: str, output_dir: str, mode: str, *overrides: str) -> list[str]:
    return ["--config-file", VCTREE_CONFIG, *TINY_VCTREE_OPTS, *mode_opts(mode), "DATASETS.DATA_DIR", data_dir,
            "GLOVE_DIR", os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir, "SOLVER.MAX_ITER", "4",
            "SOLVER.CHECKPOINT_PERIOD", "4", "SOLVER.TO_VAL", "False", "SOLVER.WARMUP_ITERS", "2",
            "TEST.IMS_PER_BATCH", "2", *overrides]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sgcls", "sgdet"])
def test_trains_and_tests_through_the_entry_points(tiny_synthvg, tmp_path, mode):
    evaluation = TRAIN.main(_args(tiny_synthvg, str(tmp_path / mode), mode))
    assert 0.0 <= evaluation["sgg"]["R@50"] <= 1.0

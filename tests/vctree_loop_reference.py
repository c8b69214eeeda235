"""REFERENCE ONLY: VCTree's context computed the way SGB organises it (docs/reference.md#vctree), with the
parameters of one of our ``VCTreeContext`` modules.

One image at a time: the pair scores from the (N_b², 3H + 1) concatenation and the (N_b², C²) joint class
distribution fed to ``vision_prior`` and ``bi_freq_prior`` as Linear layers; the greedy tree grown with node
objects, one attachment at a time (a score-matrix slice over the placed rows and remaining columns, its
first maximum), binarised recursively; every tree LSTM run recursively one node at a time (each node's
input projections computed on its own row). It is deliberately slow and literal. Tests compare the
level-batched ``VCTreeContext`` against it, and ``benchmarks/bench_relation_head.py --context vctree``
times it as the SGB-style baseline. It knows no dropout (eval mode, or one-layer stacks in PredCls) and no
decoder sampling (eval mode).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from rebalance_hca.modeling.relation_head.context import ContextInputs
from rebalance_hca.modeling.relation_head.context.tree_lstm import DownTreeLSTM, TreeLabelDecoder, UpTreeLSTM
from rebalance_hca.modeling.relation_head.context.vctree import VCTreeContext, overlap_statistics
from rebalance_hca.modeling.relation_head.object_labels import label_embedding, one_hot_logits


@dataclass
class Node:
    index: int
    children: list["Node"] = field(default_factory=list)
    left: "Node | None" = None
    right: "Node | None" = None
    parent: "Node | None" = None


def greedy_tree(scores: Tensor) -> Node:
    """SGB's ``generate_forest`` + ``gen_tree`` for one image: scores (n, n) -> the multi-way root."""
    root_index = int(scores.mean(1).max(0)[1])
    nodes = {index: Node(index) for index in range(len(scores))}
    placed, remaining = [nodes[root_index]], [index for index in range(len(scores)) if index != root_index]
    while remaining:
        block = scores[torch.tensor([node.index for node in placed])][:, torch.tensor(remaining)].reshape(-1)
        best = int(block.max(0)[1])
        parent, child = placed[best // len(remaining)], nodes[remaining[best % len(remaining)]]
        parent.children.append(child)
        placed.append(child)
        remaining.remove(child.index)
    return nodes[root_index]


def binary_tree(root: Node) -> Node:
    """SGB's ``arTree_to_biTree``: left child = first child, right child = next sibling (recursively)."""
    def convert(node: Node) -> None:
        previous = None
        for child in node.children:
            if previous is None:
                node.left = child
            else:
                previous.right = child
            child.parent = node if previous is None else previous
            convert(child)
            previous = child
    convert(root)
    return root


def binary_parents(root: Node, count: int) -> list[int]:
    parents = [-1] * count
    stack = [root]
    while stack:
        node = stack.pop()
        for child in (node.left, node.right):
            if child is not None:
                parents[child.index] = node.index
                stack.append(child)
    return parents


def up_pass(cell: UpTreeLSTM, node: Node, features: Tensor, states: dict) -> None:
    """Post-order, one node at a time (SGB ``BiTreeLSTM_Foreward.forward``); states[index] = (c, out)."""
    zero = features.new_zeros(1, cell.hidden_dim)
    for child in (node.left, node.right):
        if child is not None:
            up_pass(cell, child, features, states)
    left_c, left_h = states[node.left.index] if node.left is not None else (zero, zero)
    right_c, right_h = states[node.right.index] if node.right is not None else (zero, zero)
    x = features[node.index].view(1, -1)
    gates = cell.ioffux(x) + cell.ioffuh_left(left_h) + cell.ioffuh_right(right_h)
    i, o, f_left, f_right, u, r = torch.split(gates, cell.hidden_dim, dim=1)
    c = (torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_left) * left_c + torch.sigmoid(f_right) * right_c)
    h = torch.sigmoid(o) * torch.tanh(c)
    states[node.index] = (c, torch.sigmoid(r) * h + (1 - torch.sigmoid(r)) * cell.px(x))


def down_pass(cell: DownTreeLSTM, node: Node, features: Tensor, states: dict, decoder: TreeLabelDecoder | None = None,
              outputs: dict | None = None) -> None:
    """Pre-order, one node at a time (SGB ``BiTreeLSTM_Backward.forward``); with ``decoder`` the input is
    [features, parent's label embedding] and outputs[index] = (logits (1, C), label)."""
    zero = features.new_zeros(1, cell.hidden_dim)
    parent_c, parent_h = states[node.parent.index] if node.parent is not None else (zero, zero)
    x = features[node.index].view(1, -1)
    if decoder is not None:
        embedding = decoder.obj_embed.weight[0] if node.parent is None else outputs[node.parent.index][2]
        x = torch.cat([x, embedding.view(1, -1)], dim=1)
    i, o, f, u, r = torch.split(cell.iofux(x) + cell.iofuh(parent_h), cell.hidden_dim, dim=1)
    c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f) * parent_c
    h = torch.sigmoid(o) * torch.tanh(c)
    out = torch.sigmoid(r) * h + (1 - torch.sigmoid(r)) * cell.px(x)
    states[node.index] = (c, out)
    if decoder is not None:
        logits = decoder.out(out)
        label = int(F.softmax(logits.view(-1), 0)[1:].max(0)[1]) + 1
        outputs[node.index] = (logits, label, decoder.obj_embed(torch.tensor([label + 1], device=x.device)))
    for child in (node.left, node.right):
        if child is not None:
            down_pass(cell, child, features, states, decoder, outputs)


def tree_lstm_stack(stack, root: Node, features: Tensor) -> Tensor:
    """SGB ``MultiLayer_BTreeLSTM`` on one image's tree: (n, in) -> (n, H), node by node."""
    for layer in stack.layers:
        up_states, down_states = {}, {}
        up_pass(layer.up, root, features, up_states)
        down_pass(layer.down, root, features, down_states)
        features = torch.cat([torch.cat([up_states[index][1] for index in range(len(features))]),
                              torch.cat([down_states[index][1] for index in range(len(features))])], dim=1)
    return features


def score_logits(context: VCTreeContext, inputs: ContextInputs, text: Tensor, class_logits: Tensor) -> list[Tensor]:
    """SGB ``vctree_score_net``: per image (n, n) bi logits from the concatenated pair inputs."""
    boxes = inputs.boxes.split(inputs.num_objects)
    overlaps = torch.cat([overlap_statistics(image_boxes) for image_boxes in boxes])
    shared = F.relu(context.score_pre(torch.cat([
        context.obj_reduce(inputs.roi_features.detach()), context.emb_reduce(text.detach()),
        context.box_embed(inputs.box_info), context.overlap_embed(overlaps)], dim=1)))
    subject, object_ = F.relu(context.score_sub(shared)), F.relu(context.score_obj(shared))
    distributions = F.softmax(class_logits.detach(), dim=-1)
    logits = []
    for sub, obj, dist in zip(subject.split(inputs.num_objects), object_.split(inputs.num_objects),
                              distributions.split(inputs.num_objects)):
        n, width = sub.shape
        if n == 0:
            logits.append(sub.new_zeros(0, 0))
            continue
        sub = sub.view(1, n, width).expand(n, n, width)
        obj = obj.view(n, 1, width).expand(n, n, width)
        joint = (dist.view(1, n, 1, -1) * dist.view(n, 1, -1, 1)).view(n * n, -1)
        co_prior = context.bi_freq_prior(joint).view(n, n)
        vision = context.vision_prior(torch.cat([sub * obj, sub, obj, co_prior.unsqueeze(-1)], dim=-1)
                                      .view(n * n, -1)).view(n, n)
        logits.append(torch.sigmoid(vision) * co_prior)
    return logits


@dataclass
class ReferenceOutput:
    object_logits: Tensor
    object_labels: Tensor
    edge_context: Tensor
    pair_score_logits: list[Tensor]
    binary_parents: Tensor


def reference_context(context: VCTreeContext, inputs: ContextInputs) -> ReferenceOutput:
    """``context``'s factual forward computed the SGB way (see the module docstring)."""
    text = label_embedding(context.obj_embed1, inputs.labels, inputs.detector_logits)
    class_logits = (one_hot_logits(inputs.labels, context.num_classes) if context.mode == "predcls"
                    else inputs.detector_logits.detach())
    obj_pre = torch.cat([inputs.roi_features, text, context.pos_embed(inputs.box_info)], dim=1)
    scores = score_logits(context, inputs, text, class_logits)
    roots = [binary_tree(greedy_tree(torch.sigmoid(image_scores).detach())) if len(image_scores) else None
             for image_scores in scores]
    obj_ctx, object_logits, object_labels = [], [], []
    for root, image_pre in zip(roots, obj_pre.split(inputs.num_objects)):
        if root is None:
            continue
        image_ctx = tree_lstm_stack(context.obj_ctx_rnn, root, image_pre)
        obj_ctx.append(image_ctx)
        if context.decoder_rnn is not None:
            states, outputs = {}, {}
            down_pass(context.decoder_rnn.cell, root, torch.cat([image_pre, image_ctx], dim=1), states,
                      context.decoder_rnn, outputs)
            object_logits.append(torch.cat([outputs[index][0] for index in range(len(image_pre))]))
            object_labels.append(torch.tensor([outputs[index][1] for index in range(len(image_pre))],
                                              device=image_pre.device))
    obj_ctx = torch.cat(obj_ctx)
    if context.decoder_rnn is None:
        logits, labels = one_hot_logits(inputs.labels, context.num_classes), inputs.labels
    else:
        logits, labels = torch.cat(object_logits), torch.cat(object_labels)
    edge_input = torch.cat([context.obj_embed2(labels), inputs.roi_features, obj_ctx], dim=1)
    edge_context = torch.cat([tree_lstm_stack(context.edge_ctx_rnn, root, image_input)
                              for root, image_input in zip(roots, edge_input.split(inputs.num_objects)) if root])
    offsets = torch.tensor([0, *inputs.num_objects[:-1]]).cumsum(0).tolist()
    parents = torch.tensor([parent + offset if parent >= 0 else -1
                            for root, count, offset in zip(roots, inputs.num_objects, offsets) if root
                            for parent in binary_parents(root, count)], dtype=torch.int64)
    return ReferenceOutput(logits, labels, edge_context, scores, parents)

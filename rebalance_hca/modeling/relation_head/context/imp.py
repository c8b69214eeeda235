"""SGB's IMPContext: iterative message passing between object and pair states (Xu et al.'s IMP,
docs/relation_head.md#imp).

N objects, R pairs (s(k), o(k)), D roi feature width, Pd union width, h = IMP_HIDDEN_DIM, C classes.
    v_0 = node_gru(obj_unary(roi), 0)                 obj_unary D -> h (Kaiming-uniform a = 1, zero bias)
    e_0 = edge_gru(ReLU(edge_unary(union)), 0)        edge_unary Pd -> h (the same init)
and IMP_ITERATIONS times (t = 0, 1, 2):
    e_{t+1} = edge_gru(σ(sub_vert_w_fc[v_t[s], e_t]) v_t[s] + σ(obj_vert_w_fc[v_t[o], e_t]) v_t[o], e_t)
    m_i     = Σ_{k: s(k) = i} σ(out_edge_w_fc[v_t[s(k)], e_t[k]]) e_t[k]
              + Σ_{k: o(k) = i} σ(in_edge_w_fc[v_t[o(k)], e_t[k]]) e_t[k]     (sums; the *old* edge states)
    v_{t+1} = node_gru(m, v_t)
object logits: one-hot ±1000 (PredCls) or obj_fc(v_3) (h -> C, Kaiming); the pair states e_3 go to the
predictor's classifier (SGB's ``rel_fc``). No word vectors, box geometry or frequency bias. Pairs connect
objects of one image only, so images never interact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classifier import kaiming_fc
from ..object_labels import check_mode, foreground_argmax, one_hot_logits
from .base import ContextInputs, ObjectContext

IMP_HIDDEN_DIM = 512
"""SGB's IMPContext width, hard-coded there (CONTEXT_HIDDEN_DIM does not set it)."""
IMP_ITERATIONS = 3
"""SGB's number of message-passing iterations, hard-coded there."""


@dataclass
class PairContext(ObjectContext):
    """An ``ObjectContext`` computed over a set of pairs: ``pairs`` (R, 2) flat object indices (subject,
    object), ``pair_states`` (R, h) the final state of each, in the order of ``pairs``."""

    pairs: Tensor | None = None
    pair_states: Tensor | None = None

    def states_of(self, pairs: Tensor) -> Tensor:
        """(R', h) states of ``pairs`` (R', 2), each of which must be one of the context's pairs; ValueError
        naming the first that is not."""
        num_objects = len(self.object_labels)
        keys = self.pairs[:, 0] * num_objects + self.pairs[:, 1]
        sorted_keys, order = keys.sort()
        wanted = pairs[:, 0] * num_objects + pairs[:, 1]
        position = torch.searchsorted(sorted_keys, wanted).clamp(max=max(len(keys) - 1, 0))
        found = sorted_keys[position] == wanted if len(keys) else torch.zeros_like(wanted, dtype=torch.bool)
        if not bool(found.all()):
            missing = pairs[~found][0].tolist()
            raise ValueError(f"pair {missing} was not among the pairs the IMP context was computed over")
        return self.pair_states[order[position]]


def _gate(hidden_dim: int) -> nn.Sequential:
    """SGB's message weight: Linear(2h, 1) + sigmoid (default init)."""
    return nn.Sequential(nn.Linear(2 * hidden_dim, 1), nn.Sigmoid())


class IMPContext(nn.Module):
    """SGB's IMPContext (see the module docstring), its parameters under SGB's names.

    mode: "predcls" | "sgcls" | "sgdet" (``obj_fc`` exists outside PredCls only); in_channels: D;
    pair_channels: Pd of the union features it is given; num_classes: C; hidden_dim: h; iterations: the
    message-passing rounds.

    forward(inputs: ContextInputs with ``pairs`` (R, 2) and ``union_features`` (R, Pd)) -> ``PairContext``:
    object_logits (N, C), object_labels (N,) (GT in PredCls, else the foreground argmax of obj_fc: SGB's
    IMP returns no labels, its post-processor decodes them), edge_context (N, h) the final object states,
    pairs and pair_states (R, h).
    """

    def __init__(self, mode: str, in_channels: int, pair_channels: int, num_classes: int,
                 hidden_dim: int = IMP_HIDDEN_DIM, iterations: int = IMP_ITERATIONS) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.num_classes = num_classes
        self.hidden_dim = hidden_dim
        self.iterations = iterations
        self.obj_fc = kaiming_fc(hidden_dim, num_classes) if self.mode != "predcls" else None
        self.obj_unary = kaiming_fc(in_channels, hidden_dim)
        self.edge_unary = kaiming_fc(pair_channels, hidden_dim)
        self.edge_gru = nn.GRUCell(hidden_dim, hidden_dim)
        self.node_gru = nn.GRUCell(hidden_dim, hidden_dim)
        self.sub_vert_w_fc = _gate(hidden_dim)
        self.obj_vert_w_fc = _gate(hidden_dim)
        self.out_edge_w_fc = _gate(hidden_dim)
        self.in_edge_w_fc = _gate(hidden_dim)

    def gated_messages(self, nodes: Tensor, edges: Tensor, subjects: Tensor,
                       objects: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One round's gated messages from object states ``nodes`` (N, h) and pair states ``edges`` (R, h) of
        the pairs (``subjects``, ``objects``) (R,): the message to each pair (R, h), and each pair's message to
        its subject and to its object (R, h) each, before they are summed per object."""
        subject_nodes, object_nodes = nodes[subjects], nodes[objects]
        edge_message = (self.sub_vert_w_fc(torch.cat([subject_nodes, edges], 1)) * subject_nodes
                        + self.obj_vert_w_fc(torch.cat([object_nodes, edges], 1)) * object_nodes)
        outgoing = self.out_edge_w_fc(torch.cat([subject_nodes, edges], 1)) * edges
        incoming = self.in_edge_w_fc(torch.cat([object_nodes, edges], 1)) * edges
        return edge_message, outgoing, incoming

    def forward(self, inputs: ContextInputs) -> PairContext:
        if inputs.pairs is None or inputs.union_features is None:
            raise ValueError("the IMP context needs the pairs and their union features (ContextInputs.pairs, "
                             "ContextInputs.union_features)")
        subjects, objects = inputs.pairs[:, 0], inputs.pairs[:, 1]
        node_input = self.obj_unary(inputs.roi_features)
        edge_input = F.relu(self.edge_unary(inputs.union_features))
        nodes = self.node_gru(node_input, node_input.new_zeros(node_input.shape[0], self.hidden_dim))
        edges = self.edge_gru(edge_input, edge_input.new_zeros(edge_input.shape[0], self.hidden_dim))
        for _ in range(self.iterations):
            edge_message, outgoing, incoming = self.gated_messages(nodes, edges, subjects, objects)
            node_message = (torch.zeros_like(nodes).index_add_(0, subjects, outgoing.to(nodes.dtype))
                            .index_add_(0, objects, incoming.to(nodes.dtype)))
            edges = self.edge_gru(edge_message, edges)
            nodes = self.node_gru(node_message, nodes)
        if self.obj_fc is None:
            object_logits, object_labels = one_hot_logits(inputs.labels, self.num_classes), inputs.labels
        else:
            object_logits = self.obj_fc(nodes)
            object_labels = foreground_argmax(object_logits)
        return PairContext(object_logits, object_labels, nodes, pairs=inputs.pairs, pair_states=edges)

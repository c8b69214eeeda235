"""VCTree's tree LSTMs (docs/reference.md#vctree), run level by level over all trees of a batch.

h = the width of one pass. With x a node's input, [L], [R] its binary children and [P] its binary parent
(zeros where there is none):

* up pass (leaves -> root; SGB ``BiTreeLSTM_Foreward``): z = ioffux(x) + ioffuh_left(h_L) +
  ioffuh_right(h_R) split into i, o, f_L, f_R, u, r; c = σ(i)·tanh(u) + σ(f_L)·c_L + σ(f_R)·c_R;
* down pass (root -> leaves; SGB ``BiTreeLSTM_Backward``): z = iofux(x) + iofuh(h_P) split into i, o, f,
  u, r; c = σ(i)·tanh(u) + σ(f)·c_P;
* both: out = σ(r)·(σ(o)·tanh(c)) + (1 − σ(r))·px(x), times the pass's dropout mask in training; the
  state handed on is (c, out) and out is the node's output.

SGB runs one node at a time, recursively, one image at a time. Here the input projections (the large
matrices, x has D + E + 128 or more columns) run once over all N nodes, and the recurrence runs one
depth of all trees at a time: the up pass from the deepest level, the down pass from the roots, each
level's children or parents gathered from the previous level's states (``vctree_forest.TreeSchedule``).
The numbers are SGB's up to float rounding (the same products, grouped differently).

Initialisation (SGB): every weight block-orthogonal, each h x in block on its own; biases 0 except the
forget chunks: 0.5 on f_L and on f_R in both ioffuh layers, 1.0 on f in iofuh.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vctree_forest import TreeSchedule


def block_orthogonal_(weight: Tensor, block_rows: int) -> None:
    """Fill ``weight`` (k·block_rows, in) with k blocks of block_rows rows, each an orthogonal matrix of its
    own (the top-left block of a square orthogonal matrix of side max(block_rows, in)), in place."""
    rows, columns = weight.shape
    if rows % block_rows:
        raise ValueError(f"block_orthogonal_: {rows} rows are not a multiple of blocks of {block_rows}")
    side = max(block_rows, columns)
    with torch.no_grad():
        for start in range(0, rows, block_rows):
            square = torch.empty(side, side)
            nn.init.orthogonal_(square)
            weight[start:start + block_rows] = square[:block_rows, :columns]


def dropout_masks(probability: float, num_images: int, width: int, device: torch.device) -> Tensor:
    """(num_images, width) fixed recurrent dropout masks, one per image: keep with 1 - p, scaled by 1/(1 - p)."""
    return (torch.rand(num_images, width, device=device) > probability).float() / (1.0 - probability)


def _tree_lstm_layer(in_dim: int, hidden_dim: int, num_chunks: int) -> tuple[nn.Linear, nn.Linear]:
    """(px in -> h, gate projection in -> num_chunks·h), block-orthogonal weights, zero biases."""
    px, gates = nn.Linear(in_dim, hidden_dim), nn.Linear(in_dim, num_chunks * hidden_dim)
    for layer in (px, gates):
        block_orthogonal_(layer.weight, hidden_dim)
        nn.init.zeros_(layer.bias)
    return px, gates


def _state_linear(hidden_dim: int, num_chunks: int, forget_chunks: range, forget_bias: float) -> nn.Linear:
    """h -> num_chunks·h, block-orthogonal, bias ``forget_bias`` on the given chunks and 0 elsewhere."""
    layer = nn.Linear(hidden_dim, num_chunks * hidden_dim)
    block_orthogonal_(layer.weight, hidden_dim)
    with torch.no_grad():
        layer.bias.zero_()
        layer.bias[forget_chunks.start * hidden_dim:forget_chunks.stop * hidden_dim] = forget_bias
    return layer


def _highway_output(output_gate: Tensor, highway_gate: Tensor, memory: Tensor, projected: Tensor) -> Tensor:
    """σ(r)·(σ(o)·tanh(c)) + (1 − σ(r))·px(x) for rows of pre-activation gates o, r, memory c and px(x)."""
    highway = torch.sigmoid(highway_gate)
    return highway * (torch.sigmoid(output_gate) * torch.tanh(memory)) + (1 - highway) * projected


def _with_zero_row(states: Tensor) -> Tensor:
    """(n, h) -> (n + 1, h): the states of a level and a zero row for 'no such node'."""
    return torch.cat([states, states.new_zeros(1, states.shape[1])])


class UpTreeLSTM(nn.Module):
    """The up pass (SGB ``BiTreeLSTM_Foreward``): px Linear(in, h), ioffux Linear(in, 6h), ioffuh_left and
    ioffuh_right Linear(h, 6h).

    forward(features (N, in), schedule, dropout_mask (B, h) or None) -> (N, h) node outputs."""

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.px, self.ioffux = _tree_lstm_layer(in_dim, hidden_dim, 6)
        self.ioffuh_left = _state_linear(hidden_dim, 6, range(2, 4), 0.5)
        self.ioffuh_right = _state_linear(hidden_dim, 6, range(2, 4), 0.5)

    def forward(self, features: Tensor, schedule: TreeSchedule, dropout_mask: Tensor | None = None) -> Tensor:
        projected, input_gates = schedule.by_level(self.px(features)), schedule.by_level(self.ioffux(features))
        child_h = child_c = features.new_zeros(1, self.hidden_dim)
        outputs = []
        for depth in reversed(range(schedule.num_levels)):
            nodes = schedule.levels[depth]
            left, right = schedule.left_slot[depth], schedule.right_slot[depth]
            gates = input_gates[depth] + self.ioffuh_left(child_h[left]) + self.ioffuh_right(child_h[right])
            i, o, f_left, f_right, u, r = gates.chunk(6, dim=1)
            memory = (torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_left) * child_c[left]
                      + torch.sigmoid(f_right) * child_c[right])
            output = _highway_output(o, r, memory, projected[depth])
            if dropout_mask is not None and self.training:
                output = output * dropout_mask[schedule.image[nodes]]
            outputs.append(output)
            child_h, child_c = _with_zero_row(output), _with_zero_row(memory)
        return _node_order(outputs[::-1], schedule, features.new_zeros(0, self.hidden_dim))


class DownTreeLSTM(nn.Module):
    """The down pass (SGB ``BiTreeLSTM_Backward``): px Linear(in, h), iofux Linear(in, 5h), iofuh Linear(h, 5h).

    forward(features (N, in), schedule, dropout_mask (B, h) or None) -> (N, h) node outputs. ``step`` runs
    one level from precomputed input projections (used by the label decoder)."""

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.px, self.iofux = _tree_lstm_layer(in_dim, hidden_dim, 5)
        self.iofuh = _state_linear(hidden_dim, 5, range(2, 3), 1.0)

    def step(self, projected: Tensor, input_gates: Tensor, parent_h: Tensor, parent_c: Tensor,
             dropout_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """One level of n nodes: px(x) (n, h), iofux(x) (n, 5h), the parents' states (n, h) each, the nodes'
        dropout masks (n, h) or None -> (out, c), each (n, h)."""
        i, o, f, u, r = (input_gates + self.iofuh(parent_h)).chunk(5, dim=1)
        memory = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f) * parent_c
        output = _highway_output(o, r, memory, projected)
        if dropout_mask is not None and self.training:
            output = output * dropout_mask
        return output, memory

    def forward(self, features: Tensor, schedule: TreeSchedule, dropout_mask: Tensor | None = None) -> Tensor:
        projected, input_gates = schedule.by_level(self.px(features)), schedule.by_level(self.iofux(features))
        parent_h = parent_c = features.new_zeros(1, self.hidden_dim)
        outputs = []
        for depth in range(schedule.num_levels):
            nodes = schedule.levels[depth]
            parents = schedule.parent_slot[depth] if depth else torch.zeros_like(nodes)
            mask = dropout_mask[schedule.image[nodes]] if dropout_mask is not None else None
            output, memory = self.step(projected[depth], input_gates[depth], parent_h[parents], parent_c[parents], mask)
            outputs.append(output)
            parent_h, parent_c = output, memory
        return _node_order(outputs, schedule, features.new_zeros(0, self.hidden_dim))


def _node_order(level_outputs: list[Tensor], schedule: TreeSchedule, empty: Tensor) -> Tensor:
    """Per-level rows in depth order [(n_d, h)] -> (N, h) in node order; ``empty`` (0, h) when N = 0."""
    if not level_outputs:
        return empty
    return torch.cat(level_outputs)[schedule.node_position]


class BidirectionalTreeLSTM(nn.Module):
    """One layer: an up and a down pass of width hidden_dim / 2 each, concatenated [up, down] -> hidden_dim.
    Attribute names are SGB's ``BidirectionalTreeLSTM``'s less its one-direction wrappers."""

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        if hidden_dim % 2:
            raise ValueError(f"the tree LSTM width must be even (two passes of half of it), got {hidden_dim}")
        self.up = UpTreeLSTM(in_dim, hidden_dim // 2)
        self.down = DownTreeLSTM(in_dim, hidden_dim // 2)

    def forward(self, features: Tensor, schedule: TreeSchedule, masks: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """features (N, in) -> (N, hidden_dim); masks: (up, down) per-image dropout masks (B, hidden_dim/2)."""
        up_mask, down_mask = masks if masks is not None else (None, None)
        return torch.cat([self.up(features, schedule, up_mask), self.down(features, schedule, down_mask)], dim=1)


class MultiLayerTreeLSTM(nn.Module):
    """SGB's ``MultiLayer_BTreeLSTM``: ``num_layers`` bidirectional layers (in -> H, then H -> H). In
    training with more than one layer, each pass of each layer draws one dropout mask per image
    (p = ``dropout``), fixed over its tree.

    forward(features (N, in), schedule) -> (N, H)."""

    def __init__(self, in_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"a tree LSTM needs at least one layer, got {num_layers}")
        self.hidden_dim = hidden_dim
        self.dropout = dropout if num_layers > 1 else 0.0
        self.layers = nn.ModuleList([BidirectionalTreeLSTM(in_dim if index == 0 else hidden_dim, hidden_dim)
                                     for index in range(num_layers)])

    def forward(self, features: Tensor, schedule: TreeSchedule) -> Tensor:
        num_images = int(schedule.image.max()) + 1 if len(schedule.image) else 0
        for layer in self.layers:
            masks = None
            if self.training and self.dropout > 0:
                masks = tuple(dropout_masks(self.dropout, num_images, self.hidden_dim // 2, features.device)
                              for _ in range(2))
            features = layer(features, schedule, masks)
        return features


class TreeLabelDecoder(nn.Module):
    """SGB's ``DecoderTreeLSTM`` (SGCls, SGDet): a down pass of width H over the binary trees whose input is
    [features, the parent's label embedding]; ``obj_embed`` (C + 1, E) is its own table ("start" in row 0,
    class k in row k + 1, given by ``label_vectors``), ``out`` Linear(H, C) gives each node's logits, and
    its label is the argmax over classes 1..C−1 of their softmax. The embedding handed to the children is
    of that label at eval, of a label sampled from the softmax over 1..C−1 in training; the root gets
    "start". In training the pass's output is multiplied by one dropout mask per image (p = ``dropout``).

    forward(features (N, in), schedule) -> (logits (N, C), labels (N,) int64), in node order.
    """

    def __init__(self, label_vectors: Tensor, in_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        num_rows, embed_dim = label_vectors.shape
        self.in_dim, self.hidden_dim, self.dropout = in_dim, hidden_dim, dropout
        self.obj_embed = nn.Embedding(num_rows, embed_dim)
        with torch.no_grad():
            self.obj_embed.weight.copy_(label_vectors)
        self.out = nn.Linear(hidden_dim, num_rows - 1)
        self.cell = DownTreeLSTM(in_dim + embed_dim, hidden_dim)

    def forward(self, features: Tensor, schedule: TreeSchedule) -> tuple[Tensor, Tensor]:
        cell = self.cell
        # the input projections split: the feature part for all nodes at once, the label part for every row of
        # the label table at once; each level adds the rows of its parents' labels
        feature_projected = schedule.by_level(F.linear(features, cell.px.weight[:, :self.in_dim], cell.px.bias))
        feature_gates = schedule.by_level(F.linear(features, cell.iofux.weight[:, :self.in_dim], cell.iofux.bias))
        label_projected = F.linear(self.obj_embed.weight, cell.px.weight[:, self.in_dim:])
        label_gates = F.linear(self.obj_embed.weight, cell.iofux.weight[:, self.in_dim:])
        num_images = int(schedule.image.max()) + 1 if len(schedule.image) else 0
        masks = None
        if self.training and self.dropout > 0:
            masks = dropout_masks(self.dropout, num_images, self.hidden_dim, features.device)
        parent_h = parent_c = features.new_zeros(1, self.hidden_dim)
        parent_rows = torch.zeros(1, dtype=torch.int64, device=features.device)  # the root's: "start"
        level_logits, level_labels = [], []
        for depth in range(schedule.num_levels):
            nodes = schedule.levels[depth]
            parents = schedule.parent_slot[depth] if depth else torch.zeros_like(nodes)
            rows = parent_rows[parents]
            projected = feature_projected[depth] + label_projected[rows]
            gates = feature_gates[depth] + label_gates[rows]
            mask = masks[schedule.image[nodes]] if masks is not None else None
            output, memory = cell.step(projected, gates, parent_h[parents], parent_c[parents], mask)
            logits = self.out(output)
            probabilities = F.softmax(logits, dim=1)[:, 1:]
            labels = probabilities.argmax(dim=1) + 1
            passed = torch.multinomial(probabilities.detach(), 1).squeeze(1) + 1 if self.training else labels
            level_logits.append(logits)
            level_labels.append(labels)
            parent_h, parent_c, parent_rows = output, memory, passed + 1
        logits = _node_order(level_logits, schedule, features.new_zeros(0, self.out.out_features))
        labels = _node_order(level_labels, schedule, torch.zeros(0, dtype=torch.int64, device=features.device))
        return logits, labels

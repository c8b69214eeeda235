"""SGB's LSTMContext, the object and edge context of neural motifs (docs/reference.md#neural-motifs).

N = ΣN_b objects of B images, D roi feature width, E word-vector size, H = CONTEXT_HIDDEN_DIM, C classes.

    obj_pre  = [roi (D), label embedding (E), pos_embed(box code) (128)]
    obj_ctx  = lin_obj_h(obj_ctx_rnn(obj_pre))                    bidirectional LSTM, H per direction
    labels   = GT (PredCls) | decoder_rnn([obj_pre, obj_ctx])     highway LSTM decoder (SGCls, SGDet)
    edge_ctx = lin_edge_h(edge_ctx_rnn([obj_embed2[labels], roi, obj_ctx]))

The LSTMs and the decoder read each image's objects in SGB's "leftright" order (``leftright_order``), one
sequence per image; the sequences of all images of a batch run together as one packed, time-major batch
(an image's numbers do not depend on the others'), and every output comes back in input order.
The context follows the counterfactual protocol of ``counterfactual`` (SGB's causal TDE runs on it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..object_labels import check_mode, label_embedding, nms_decode_labels, one_hot_logits
from .base import BOX_EMBED_DIM, ContextInputs, ObjectContext, glove_embedding
from .counterfactual import register_average, update_moving_average

POSITION_BN_MOMENTUM = 0.001
"""SGB's BatchNorm momentum in ``pos_embed``."""


def position_embedding() -> nn.Sequential:
    """SGB's ``pos_embed`` of Motifs, VCTree and VTransE: 9-d box code -> 128 (Linear 9 -> 32, BatchNorm1d
    (momentum 0.001), Linear 32 -> 128, ReLU; PyTorch's default initialisation)."""
    return nn.Sequential(nn.Linear(9, 32), nn.BatchNorm1d(32, momentum=POSITION_BN_MOMENTUM),
                         nn.Linear(32, BOX_EMBED_DIM), nn.ReLU(inplace=True))


@dataclass
class PackedOrder:
    """Where N objects go in the packed, time-major layout of the LSTMs (one sequence per image).

    permutation: (N,) int64, packed position -> flat object index; inverse: (N,) its inverse.
    batch_sizes: (T,) int64 on the CPU, the number of sequences at step t (T = the largest N_b).
    image_sorted: (N,) int64 flat object indices grouped by image (images in input order), each image's
        objects in their sequence order.
    num_objects: N_b per image.
    """

    permutation: Tensor
    inverse: Tensor
    batch_sizes: Tensor
    image_sorted: Tensor
    num_objects: list[int]


def leftright_order(boxes: Tensor, num_objects: list[int]) -> PackedOrder:
    """SGB's "leftright" object order (its ``sort_rois``), per image: objects by decreasing
    score = cx / (max cx of the image + 1) + 4 N_b, cx = (x1 + x2) / 2 (float32), i.e. right to left; the
    offset is the one SGB adds when it tests one image per forward, kept so that centres that float32 merges
    tie as in SGB. Exact ties: the earlier box first (SGB leaves them to an unstable sort).

    Each image is ordered alone, so its order does not depend on the batch (SGB's training batch normalises
    by the batch's largest centre and offsets images by their batch position, which can merge different
    near-equal centres). The sequences are packed longest first, the later image first among equal lengths
    (SGB's rule), which only decides which image gets which row of the training dropout masks.

    boxes: (N, 4) xyxy; num_objects: N_b per image (ΣN_b = N; an image may have none).
    """
    device = boxes.device
    num_images = len(num_objects)
    counts = torch.tensor(num_objects, device=device, dtype=torch.int64)
    image_of = torch.repeat_interleave(torch.arange(num_images, device=device), counts)
    centre = 0.5 * (boxes[:, 0] + boxes[:, 2])
    image_max = centre.new_full((num_images,), float("-inf")).scatter_reduce(0, image_of, centre, "amax")
    score = centre / (image_max[image_of] + 1) + (4.0 * counts).to(centre.dtype)[image_of]
    by_score = torch.sort(score, descending=True, stable=True).indices
    image_sorted = by_score[torch.sort(image_of[by_score], stable=True).indices]
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(boxes), device=device) - starts[image_of[image_sorted]]
    sequence_rank = torch.empty(num_images, dtype=torch.int64)
    sequence_rank[sorted(range(num_images), key=lambda image: (-num_objects[image], -image))] = torch.arange(
        num_images)
    key = position * num_images + sequence_rank.to(device)[image_of[image_sorted]]
    permutation = image_sorted[torch.argsort(key)]
    inverse = torch.empty_like(permutation)
    inverse[permutation] = torch.arange(len(permutation), device=device)
    steps = max(num_objects, default=0)
    batch_sizes = torch.tensor([sum(count > step for count in num_objects) for step in range(steps)],
                               dtype=torch.int64)
    return PackedOrder(permutation, inverse, batch_sizes, image_sorted, list(num_objects))


def packed_lstm(lstm: nn.LSTM, rows: Tensor, batch_sizes: Tensor) -> Tensor:
    """Run ``lstm`` on rows (N, in) in packed time-major order with batch_sizes (T,) -> (N, directions · H)."""
    output, _ = lstm(PackedSequence(rows, batch_sizes))
    return output.data


class DecoderRNN(nn.Module):
    """SGB's DecoderRNN: a highway LSTM cell that labels the objects one step at a time.

    label_vectors: (C + 1, E) word vectors of "start" then the C classes (row k + 1 = class k);
    input_dim: width of a step's sequence input; hidden_dim: H; dropout: p of the recurrent dropout mask
    (training only). ``input_linearity`` (input_dim + E -> 6H) and ``state_linearity`` (H -> 5H) have
    PyTorch's default weights and zero biases; ``out_obj`` (H -> C) is default.

    One step, with x = input_linearity([sequence row, embedding of the previous label]) and
    s = state_linearity(previous output), split in H-chunks 0..5 (s has 0..4):
        i, f, o = σ(x0 + s0), σ(x1 + s1), σ(x3 + s3);  g = tanh(x2 + s2)
        c = i·g + f·c_prev;  h = o·tanh(c);  r = σ(x4 + s4);  out = r·h + (1 − r)·x5
    In training out is multiplied by one dropout mask per sequence, fixed over the steps, before it becomes
    the next state. dists = out_obj(out). Next label: training the target label (a 0 replaced by the
    argmax of dists over 1..C−1), eval the argmax over 1..C−1 of softmax(dists); "start" at step 0.
    The input projection of the sequence rows is computed for all steps at once, and only the label
    embedding's part at each step: the same function as SGB's per-step product of the concatenation.
    """

    def __init__(self, label_vectors: Tensor, input_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.input_dim, self.hidden_dim, self.dropout = input_dim, hidden_dim, dropout
        self.obj_embed = glove_embedding(label_vectors)
        embed_dim = label_vectors.shape[1]
        self.input_linearity = nn.Linear(input_dim + embed_dim, 6 * hidden_dim)
        self.state_linearity = nn.Linear(hidden_dim, 5 * hidden_dim)
        self.out_obj = nn.Linear(hidden_dim, label_vectors.shape[0] - 1)
        nn.init.zeros_(self.input_linearity.bias)
        nn.init.zeros_(self.state_linearity.bias)

    def highway_step(self, projected_input: Tensor, state: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        """One step of the cell: projected_input (M, 6H) = input_linearity of the step's input, state and
        memory (M, H) -> (out, memory) (M, H), before any dropout."""
        hidden = self.hidden_dim
        x = projected_input.split(hidden, dim=1)
        s = self.state_linearity(state).split(hidden, dim=1)
        input_gate = torch.sigmoid(x[0] + s[0])
        forget_gate = torch.sigmoid(x[1] + s[1])
        candidate = torch.tanh(x[2] + s[2])
        output_gate = torch.sigmoid(x[3] + s[3])
        memory = input_gate * candidate + forget_gate * memory
        output = output_gate * torch.tanh(memory)
        highway_gate = torch.sigmoid(x[4] + s[4])
        return highway_gate * output + (1 - highway_gate) * x[5], memory

    def step_labels(self, step_dists: Tensor, step_targets: Tensor | None) -> Tensor:
        """The labels one step passes on, (M,) int64 from its dists (M, C): training the targets (M,) with 0
        replaced by the foreground argmax of the dists, eval the foreground argmax of their softmax."""
        if self.training:
            return torch.where(step_targets == 0, step_dists[:, 1:].argmax(1) + 1, step_targets)
        return F.softmax(step_dists, dim=1)[:, 1:].argmax(1) + 1

    def forward(self, sequence: Tensor, batch_sizes: Tensor, target_labels: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """sequence (N, input_dim) in packed time-major order with batch_sizes (T,); target_labels (N,) in the
        same order (training: teacher forcing; SGDet's unmatched objects 0) -> (dists (N, C), labels (N,)
        int64), packed order."""
        if self.training and target_labels is None:
            raise ValueError("the Motifs decoder needs the objects' target labels in training")
        weight = self.input_linearity.weight
        step_sizes = batch_sizes.tolist()
        sequence_steps = F.linear(sequence, weight[:, :self.input_dim], self.input_linearity.bias).split(step_sizes)
        label_weight = weight[:, self.input_dim:]
        num_sequences = step_sizes[0] if step_sizes else 0
        state = sequence.new_zeros(num_sequences, self.hidden_dim)
        memory = torch.zeros_like(state)
        previous = torch.zeros(num_sequences, dtype=torch.int64, device=sequence.device)
        mask = None
        if self.training and self.dropout > 0:
            keep = torch.rand(num_sequences, self.hidden_dim) > self.dropout
            mask = keep.float().div(1.0 - self.dropout).to(sequence.device)
        dists, labels, start = [], [], 0
        for size, sequence_projection in zip(step_sizes, sequence_steps):
            rows = slice(start, start + size)
            start += size
            projected = sequence_projection + F.linear(self.obj_embed(previous[:size]), label_weight)
            state, memory = self.highway_step(projected, state[:size], memory[:size])
            if mask is not None:
                state = state * mask[:size]
            step_dists = self.out_obj(state)
            step_labels = self.step_labels(step_dists, target_labels[rows] if self.training else None)
            dists.append(step_dists)
            labels.append(step_labels)
            previous = step_labels + 1
        if not dists:
            return sequence.new_zeros(0, self.out_obj.out_features), previous.new_zeros(0)
        return torch.cat(dists), torch.cat(labels)


class LSTMContext(nn.Module):
    """SGB's LSTMContext (see the module docstring).

    mode: "predcls" | "sgcls" | "sgdet". object_vectors: (C, E) word vectors of the classes, copied into
    ``obj_embed1`` (label embedding of the object input) and ``obj_embed2`` (edge input).
    decoder_vectors: (C + 1, E) vectors of "start" + the classes for the decoder's own table (SGCls, SGDet;
    ignored in PredCls, which has no decoder). in_channels: D. hidden_dim: H. obj_layers, rel_layers:
    CONTEXT_OBJ_LAYER, CONTEXT_REL_LAYER. dropout: CONTEXT_DROPOUT_RATE (between LSTM layers when there are
    several, and the decoder's recurrent mask). nms_threshold: TEST.RELATION.LATER_NMS_PREDICTION_THRES
    (SGDet test-time labels). effect_analysis: CAUSAL.EFFECT_ANALYSIS (the untreated averages).

    forward(ContextInputs, counterfactual=False) -> ObjectContext: object_logits (N, C) (the decoder's dists;
    one-hot ±1000 in PredCls), object_labels (N,), edge_context (N, H).
    """

    def __init__(self, mode: str, object_vectors: Tensor, decoder_vectors: Tensor | None, in_channels: int,
                 hidden_dim: int, obj_layers: int, rel_layers: int, dropout: float, nms_threshold: float,
                 effect_analysis: bool = False) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.num_classes, embed_dim = object_vectors.shape
        self.nms_threshold = nms_threshold
        self.effect_analysis = effect_analysis
        self.obj_embed1 = glove_embedding(object_vectors)
        self.obj_embed2 = glove_embedding(object_vectors)
        self.pos_embed = position_embedding()
        object_input = in_channels + embed_dim + BOX_EMBED_DIM
        self.obj_ctx_rnn = nn.LSTM(object_input, hidden_dim, num_layers=obj_layers,
                                   dropout=dropout if obj_layers > 1 else 0.0, bidirectional=True)
        self.decoder_rnn = None
        if self.mode != "predcls":
            if decoder_vectors is None:
                raise ValueError(f"the Motifs context in {mode} needs the decoder's word vectors")
            self.decoder_rnn = DecoderRNN(decoder_vectors, object_input + hidden_dim, hidden_dim, dropout)
        self.edge_ctx_rnn = nn.LSTM(embed_dim + in_channels + hidden_dim, hidden_dim, num_layers=rel_layers,
                                    dropout=dropout if rel_layers > 1 else 0.0, bidirectional=True)
        self.lin_obj_h = nn.Linear(2 * hidden_dim, hidden_dim)
        self.lin_edge_h = nn.Linear(2 * hidden_dim, hidden_dim)
        if effect_analysis:
            register_average(self, "untreated_dcd_feat", object_input + hidden_dim)
            register_average(self, "untreated_obj_feat", object_input)
            register_average(self, "untreated_edg_feat", embed_dim + in_channels)

    def averages_used_by_counterfactual(self) -> list[str]:
        """The untreated averages the counterfactual pass reads: the edge input's, and the decoder input's
        when labels are decoded (SGCls, SGDet)."""
        return ["untreated_edg_feat"] + (["untreated_dcd_feat"] if self.decoder_rnn is not None else [])

    def forward(self, inputs: ContextInputs, counterfactual: bool = False) -> ObjectContext:
        if counterfactual and (self.training or not self.effect_analysis):
            raise ValueError("the counterfactual pass needs eval mode and effect_analysis")
        if inputs.boxes is None:
            raise ValueError("the Motifs context needs the boxes (ContextInputs.boxes) for its object order")
        roi = inputs.roi_features
        num_rows = roi.shape[0]
        if num_rows == 0:
            return ObjectContext(roi.new_zeros(0, self.num_classes), torch.zeros(0, dtype=torch.int64,
                                 device=roi.device), roi.new_zeros(0, self.lin_edge_h.out_features))
        order = leftright_order(inputs.boxes, inputs.num_objects)
        object_input = torch.cat([roi, label_embedding(self.obj_embed1, inputs.labels, inputs.detector_logits),
                                  self.pos_embed(inputs.box_info)], dim=1)
        packed_input = object_input[order.permutation]
        packed_context = self.lin_obj_h(packed_lstm(self.obj_ctx_rnn, packed_input, order.batch_sizes))
        if self.training and self.effect_analysis:
            update_moving_average(self.untreated_dcd_feat, torch.cat([packed_input, packed_context], dim=1))
        object_logits, object_labels = self._object_labels(inputs, order, packed_input, packed_context,
                                                           counterfactual)
        object_context = packed_context[order.inverse]
        label_vectors = self.obj_embed2(object_labels)
        if counterfactual:
            edge_input = torch.cat([self.untreated_edg_feat.expand(num_rows, -1), object_context], dim=1)
        else:
            edge_input = torch.cat([label_vectors, roi, object_context], dim=1)
        packed_edges = packed_lstm(self.edge_ctx_rnn, edge_input[order.permutation], order.batch_sizes)
        edge_context = self.lin_edge_h(packed_edges)[order.inverse]
        if self.training and self.effect_analysis:
            update_moving_average(self.untreated_obj_feat, object_input)
            update_moving_average(self.untreated_edg_feat, torch.cat([label_vectors, roi], dim=1))
        return ObjectContext(object_logits, object_labels, edge_context)

    def _object_labels(self, inputs: ContextInputs, order: PackedOrder, packed_input: Tensor,
                       packed_context: Tensor, counterfactual: bool) -> tuple[Tensor, Tensor]:
        """(object_logits (N, C), object_labels (N,)) in input order: the GT in PredCls, else the decoder's
        (its input replaced by ``untreated_dcd_feat`` in the counterfactual pass), re-labelled by per-class
        NMS at SGDet test time."""
        if self.decoder_rnn is None:
            return one_hot_logits(inputs.labels, self.num_classes), inputs.labels
        if counterfactual:
            decoder_input = self.untreated_dcd_feat.expand(len(packed_input), -1)
        else:
            decoder_input = torch.cat([packed_input, packed_context], dim=1)
        targets = None
        if self.training:
            if inputs.target_labels is None:
                raise ValueError("training the Motifs decoder needs ContextInputs.target_labels")
            targets = inputs.target_labels[order.permutation]
        packed_logits, packed_labels = self.decoder_rnn(decoder_input, order.batch_sizes, targets)
        logits, labels = packed_logits[order.inverse], packed_labels[order.inverse]
        if self.mode == "sgdet" and not self.training:
            labels = self._nms_labels(logits, inputs.boxes_per_cls, order)
        return logits, labels

    def _nms_labels(self, logits: Tensor, boxes_per_cls: Tensor | None, order: PackedOrder) -> Tensor:
        """SGDet test-time labels: per image, SGB's decoder NMS (background probability 0, a later assignment
        overwrites) over the image's objects in sequence order. logits (N, C) -> labels (N,) int64."""
        if boxes_per_cls is None:
            raise ValueError("SGDet inference needs the detections' boxes_per_cls")
        labels = torch.empty(len(logits), dtype=torch.int64, device=logits.device)
        for rows in order.image_sorted.split(order.num_objects):
            labels[rows] = nms_decode_labels(logits[rows], boxes_per_cls[rows], self.nms_threshold,
                                             background_value=0.0)
        return labels

"""SGB's VCTree context (``VCTreeLSTMContext``; docs/reference.md#vctree, docs/relation_head.md#vctree).

B images, N = ΣN_b objects, D box-feature width, E word-vector width, H hidden width, C object classes.

    obj_pre   = [roi (D), label embedding (E), pos_embed(box code) (128)]
    scores    = the learned pair scores per image (``pair_score_logits``), trees grown from them
                (``vctree_forest``)
    obj_ctx   = obj_ctx_rnn(obj_pre) over the binary trees                                    (N, H)
    labels    = GT (PredCls) or decoder_rnn([obj_pre, obj_ctx]) over the same trees (SGCls, SGDet)
    edge_ctx  = edge_ctx_rnn([obj_embed2[labels], roi, obj_ctx])                               (N, H)

Training adds ``binary_loss``: BCE-with-logits of each image's score logits against its symmetric 0/1
relation matrix (``ContextInputs.relation_adjacency``), averaged over images.

The context follows the counterfactual protocol of SGB's causal TDE predictor (``context.counterfactual``):
with ``effect_analysis`` (SGB's CAUSAL.EFFECT_ANALYSIS) it keeps SGB's moving averages
``untreated_dcd_feat`` (decoder input, updated once per image as SGB, only when labels are decoded),
``untreated_obj_feat`` (obj_pre) and ``untreated_edg_feat`` ([obj_embed2[label], roi]), updated in training,
and ``forward(inputs, counterfactual=True)`` (eval, no gradient) reruns the context with TDE's "context
average": the decoder gets ``untreated_dcd_feat`` for every object, the edge tree LSTM
[``untreated_edg_feat``, obj_ctx]; obj_ctx and the trees stay factual (docs/reference.md#causal-tde).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classifier import xavier_linear
from ..object_labels import check_mode, label_embedding, one_hot_logits
from .base import BOX_EMBED_DIM, ContextInputs, ObjectContext, glove_embedding
from .counterfactual import register_average, update_moving_average
from .tree_lstm import MultiLayerTreeLSTM, TreeLabelDecoder
from .vctree_forest import BinaryForest, binarize, grow_trees, tree_schedule

BATCH_NORM_MOMENTUM = 0.001
"""SGB's momentum of the BatchNorm layers in pos_embed, box_embed and overlap_embed."""
OVERLAP_SCALE = 1024.0
"""SGB's pixel scale of the overlap statistics (``IM_SCALE``), whatever the image size."""
SCORE_FEATURE_DIM = 128
"""The width of each of the four parts of the score network's input (obj_reduce, emb_reduce, box_embed,
overlap_embed)."""


def overlap_statistics(boxes: Tensor) -> Tensor:
    """SGB's ``get_overlap_info`` for the boxes of one image: (N, 4) xyxy pixels -> (N, 6).

    Over every j including i itself, +1 pixel convention: inter(i, j) = max(0, min x2 − max x1 + 1) ·
    max(0, min y2 − max y1 + 1); IoU with +1 areas and 1e-9 added to the union. The six values: n = #j with
    inter > 0; Σ_j inter / 1024²; Σ_j IoU; the previous two each / (n + 1e-9); the box's area (without +1)
    / 1024².
    """
    top_left = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    sides = (bottom_right - top_left + 1.0).clamp(min=0)
    intersection = sides[..., 0] * sides[..., 1]
    pixel_area = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    iou = intersection / (pixel_area[:, None] + pixel_area[None, :] - intersection + 1e-9)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    overlapping = (intersection > 0.0).float().sum(dim=1)
    intersection_sum = intersection.sum(dim=1) / (OVERLAP_SCALE * OVERLAP_SCALE)
    iou_sum = iou.sum(dim=1)
    return torch.stack([overlapping, intersection_sum, iou_sum, intersection_sum / (overlapping + 1e-9),
                        iou_sum / (overlapping + 1e-9), area / (OVERLAP_SCALE * OVERLAP_SCALE)], dim=1)


def pair_score_loss(score_logits: list[Tensor], adjacency: list[Tensor]) -> Tensor:
    """SGB's ``binary_loss``: the mean over images (those with objects) of BCE-with-logits of the score
    logits (N_b, N_b) against ``adjacency`` (N_b, N_b) > 0 (mean over all N_b² entries, diagonal included)."""
    losses = [F.binary_cross_entropy_with_logits(logits, (target > 0).float())
              for logits, target in zip(score_logits, adjacency) if logits.numel()]
    if not losses:
        return score_logits[0].new_zeros(()) if score_logits else torch.zeros(())
    return torch.stack(losses).mean()


@dataclass
class VCTreeObjectContext(ObjectContext):
    """``ObjectContext`` plus the tree of VCTree.

    pair_score_logits: per image (N_b, N_b) the score logits bi(i, j) (SGB's ``binary_preds``).
    binary_loss: scalar, ``pair_score_loss`` when the inputs carry the relation adjacency and the logits
    need a gradient, else 0.
    forest: the binary trees the tree LSTMs ran on.
    """

    pair_score_logits: list[Tensor]
    binary_loss: Tensor
    forest: BinaryForest


class VCTreeContext(nn.Module):
    """SGB's ``VCTreeLSTMContext`` (see the module docstring); submodules carry SGB's attribute names.

    mode: "predcls" | "sgcls" | "sgdet". object_vectors: (C, E) GloVe vectors copied into obj_embed1 and
    obj_embed2. label_vectors: (C + 1, E) the label decoder's own table ("start", then the classes); needed
    in SGCls / SGDet only (PredCls, whose labels are given, builds no decoder). pred_dist: (C, C, P) log
    predicate distribution, whose sum over predicates S gives the tree prior's weight S + Sᵀ.
    in_channels: D. hidden_dim: H (even). obj_layers / rel_layers: CONTEXT_OBJ_LAYER / CONTEXT_REL_LAYER.
    dropout_rate: CONTEXT_DROPOUT_RATE (tree LSTMs with several layers, and the decoder). effect_analysis:
    CAUSAL.EFFECT_ANALYSIS.

    forward(inputs, counterfactual=False) -> VCTreeObjectContext with edge_context (N, H).
    """

    def __init__(self, mode: str, object_vectors: Tensor, label_vectors: Tensor | None, pred_dist: Tensor,
                 in_channels: int, hidden_dim: int, obj_layers: int, rel_layers: int, dropout_rate: float,
                 effect_analysis: bool = False) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.num_classes, self.embed_dim = object_vectors.shape
        self.hidden_dim = hidden_dim
        self.effect_analysis = effect_analysis
        if hidden_dim % 2:
            raise ValueError(f"VCTree's CONTEXT_HIDDEN_DIM must be even (two tree passes of half of it), got {hidden_dim}")
        self.obj_embed1 = glove_embedding(object_vectors)
        self.obj_embed2 = glove_embedding(object_vectors)
        self.pos_embed = nn.Sequential(nn.Linear(9, 32), nn.BatchNorm1d(32, momentum=BATCH_NORM_MOMENTUM),
                                       nn.Linear(32, BOX_EMBED_DIM), nn.ReLU(inplace=True))
        self.overlap_embed = nn.Sequential(nn.Linear(6, SCORE_FEATURE_DIM),
                                           nn.BatchNorm1d(SCORE_FEATURE_DIM, momentum=BATCH_NORM_MOMENTUM),
                                           nn.ReLU(inplace=True))
        self.box_embed = nn.Sequential(nn.Linear(9, SCORE_FEATURE_DIM),
                                       nn.BatchNorm1d(SCORE_FEATURE_DIM, momentum=BATCH_NORM_MOMENTUM),
                                       nn.ReLU(inplace=True))
        co_occurrence = pred_dist.float().sum(-1)
        self.bi_freq_prior = nn.Linear(self.num_classes * self.num_classes, 1, bias=False)
        with torch.no_grad():
            self.bi_freq_prior.weight.copy_((co_occurrence + co_occurrence.T).reshape(1, -1))
        self.obj_reduce = xavier_linear(in_channels, SCORE_FEATURE_DIM)
        self.emb_reduce = xavier_linear(self.embed_dim, SCORE_FEATURE_DIM)
        self.score_pre = xavier_linear(4 * SCORE_FEATURE_DIM, hidden_dim)
        self.score_sub = xavier_linear(hidden_dim, hidden_dim)
        self.score_obj = xavier_linear(hidden_dim, hidden_dim)
        self.vision_prior = nn.Linear(3 * hidden_dim + 1, 1)
        object_dim = in_channels + self.embed_dim + BOX_EMBED_DIM
        self.obj_ctx_rnn = MultiLayerTreeLSTM(object_dim, hidden_dim, obj_layers, dropout_rate)
        self.decoder_rnn = None
        if self.mode != "predcls":
            if label_vectors is None:
                raise ValueError(f"VCTree in {self.mode} needs the label decoder's word vectors")
            self.decoder_rnn = TreeLabelDecoder(label_vectors, object_dim + hidden_dim, hidden_dim, dropout_rate)
        self.edge_ctx_rnn = MultiLayerTreeLSTM(self.embed_dim + in_channels + hidden_dim, hidden_dim, rel_layers,
                                               dropout_rate)
        if effect_analysis:
            register_average(self, "untreated_dcd_feat", object_dim + hidden_dim)
            register_average(self, "untreated_obj_feat", object_dim)
            register_average(self, "untreated_edg_feat", self.embed_dim + in_channels)

    def averages_used_by_counterfactual(self) -> list[str]:
        """The untreated averages the counterfactual pass reads: the edge input's, and the decoder input's
        when labels are decoded (SGCls, SGDet)."""
        return ["untreated_edg_feat"] + (["untreated_dcd_feat"] if self.decoder_rnn is not None else [])

    def forward(self, inputs: ContextInputs, counterfactual: bool = False) -> VCTreeObjectContext:
        if counterfactual and (self.training or not self.effect_analysis):
            raise ValueError("the VCTree counterfactual pass needs eval mode and CAUSAL.EFFECT_ANALYSIS True "
                             "(its untreated averages)")
        if inputs.boxes is None:
            raise ValueError("the VCTree context needs the objects' boxes (overlap statistics)")
        roi = inputs.roi_features
        text = label_embedding(self.obj_embed1, inputs.labels, inputs.detector_logits)
        class_logits = (one_hot_logits(inputs.labels, self.num_classes) if self.mode == "predcls"
                        else inputs.detector_logits.detach())
        obj_pre = torch.cat([roi, text, self.pos_embed(inputs.box_info)], dim=1)
        score_logits = self.pair_score_logits(inputs, text, class_logits)
        forest = binarize(grow_trees(_scores_on_cpu(score_logits)))
        schedule = tree_schedule(forest).to(roi.device)
        obj_ctx = self.obj_ctx_rnn(obj_pre, schedule)
        if self.decoder_rnn is None:
            object_logits, object_labels = one_hot_logits(inputs.labels, self.num_classes), inputs.labels
        else:
            if counterfactual:
                decoder_input = self.untreated_dcd_feat.view(1, -1).expand(len(roi), -1)
            else:
                decoder_input = torch.cat([obj_pre, obj_ctx], dim=1)
            if self.training and self.effect_analysis:
                for image_input in decoder_input.split(inputs.num_objects):
                    update_moving_average(self.untreated_dcd_feat, image_input)
            object_logits, object_labels = self.decoder_rnn(decoder_input, schedule)
        label_vectors = self.obj_embed2(object_labels)
        if counterfactual:
            edge_input = torch.cat([self.untreated_edg_feat.view(1, -1).expand(len(roi), -1), obj_ctx], dim=1)
        else:
            edge_input = torch.cat([label_vectors, roi, obj_ctx], dim=1)
        edge_context = self.edge_ctx_rnn(edge_input, schedule)
        if self.training and self.effect_analysis:
            update_moving_average(self.untreated_obj_feat, obj_pre)
            update_moving_average(self.untreated_edg_feat, torch.cat([label_vectors, roi], dim=1))
        binary_loss = roi.new_zeros(())
        if inputs.relation_adjacency is not None and any(logits.requires_grad for logits in score_logits):
            binary_loss = pair_score_loss(score_logits, inputs.relation_adjacency)
        return VCTreeObjectContext(object_logits, object_labels, edge_context, score_logits, binary_loss, forest)

    def pair_score_logits(self, inputs: ContextInputs, text: Tensor, class_logits: Tensor) -> list[Tensor]:
        """SGB's ``vctree_score_net``: per image (N_b, N_b) logits bi(i, j) = σ(v(i, j)) · co(i, j) of j as a
        child of i. text: (N, E) the label embeddings; class_logits: (N, C) one-hot ±1000 (PredCls) or the
        detector's logits.

        u = [obj_reduce(roi), emb_reduce(text), box_embed(box code), overlap_embed(overlaps)] (roi and text
        detached), f = ReLU(score_pre(u)), a = ReLU(score_sub(f)), b = ReLU(score_obj(f)), p = softmax(class
        logits); co(i, j) = p_i W p_j with W the (C, C) tree prior; v(i, j) = vision_prior([a_j ⊙ b_i, a_j,
        b_i, co(i, j)]), evaluated as the bilinear form it is ((b_i ⊙ w) · a_j + ...) instead of SGB's
        (N_b², 3H + 1) concatenation.
        """
        boxes = inputs.boxes.split(inputs.num_objects)
        overlaps = torch.cat([overlap_statistics(image_boxes) for image_boxes in boxes])
        score_input = torch.cat([self.obj_reduce(inputs.roi_features.detach()), self.emb_reduce(text.detach()),
                                 self.box_embed(inputs.box_info), self.overlap_embed(overlaps)], dim=1)
        shared = F.relu(self.score_pre(score_input))
        subject, object_ = F.relu(self.score_sub(shared)), F.relu(self.score_obj(shared))
        probabilities = F.softmax(class_logits.detach(), dim=1)
        prior = self.bi_freq_prior.weight.view(self.num_classes, self.num_classes)
        pair_weight, subject_weight, object_weight, prior_weight = self.vision_prior.weight[0].split(
            [self.hidden_dim, self.hidden_dim, self.hidden_dim, 1])
        logits = []
        for image_subject, image_object, image_probabilities in zip(
                subject.split(inputs.num_objects), object_.split(inputs.num_objects),
                probabilities.split(inputs.num_objects)):
            co_prior = image_probabilities @ prior @ image_probabilities.T
            vision = ((image_object * pair_weight) @ image_subject.T + (image_subject @ subject_weight)[None, :]
                      + (image_object @ object_weight)[:, None] + prior_weight * co_prior + self.vision_prior.bias)
            logits.append(torch.sigmoid(vision) * co_prior)
        return logits


def _scores_on_cpu(score_logits: list[Tensor]) -> list[Tensor]:
    """The tree scores s = σ(logits) per image, detached, on the CPU (one transfer for the batch)."""
    if not score_logits:
        return []
    scores = torch.cat([torch.sigmoid(logits.detach()).reshape(-1) for logits in score_logits]).cpu()
    return [flat.view(len(logits), len(logits)) for flat, logits in
            zip(scores.split([logits.numel() for logits in score_logits]), score_logits)]

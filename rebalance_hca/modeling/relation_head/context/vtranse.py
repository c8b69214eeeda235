"""SGB's VTransEFeature, the context-free "vtranse" context of its causal TDE predictor
(CAUSAL.CONTEXT_LAYER vtranse; docs/reference.md#causal-tde).

N objects, D roi feature width, E word-vector size, H = CONTEXT_HIDDEN_DIM, C classes. Per object, with no
exchange between objects:
    obj_pre     = [roi (D), label embedding (E), pos_embed(box code) (128)]
    dists       = pred_layer(obj_pre)                      (D + E + 128 -> C)
    labels      = argmax of dists over all C classes, background included, in every mode (PredCls too:
                  SGB's quirk, kept; the post-processor still ranks classes 1..C-1)
    edge_ctx    = ReLU(fc_layer([roi, pos, obj_embed2[labels]]))    (D + 128 + E -> H)
``pred_layer`` and ``fc_layer`` are SGB's ``make_fc`` (Kaiming-uniform with a = 1, zero bias).
Counterfactual pass: obj_pre <- ``untreated_obj_feat``; the edge input becomes [``untreated_edg_feat``,
softmax(dists) @ obj_embed2] (the averaged [roi, pos] and the expected label embedding of that pass).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classifier import kaiming_fc
from ..object_labels import label_embedding
from .base import BOX_EMBED_DIM, ContextInputs, ObjectContext, glove_embedding
from .counterfactual import register_average, update_moving_average
from .motifs import position_embedding


class VTransEContext(nn.Module):
    """SGB's VTransEFeature (see the module docstring).

    object_vectors: (C, E) word vectors of the classes (``obj_embed1``, ``obj_embed2``); in_channels: D;
    hidden_dim: H; effect_analysis: CAUSAL.EFFECT_ANALYSIS (buffers ``untreated_obj_feat`` (D + E + 128)
    and ``untreated_edg_feat`` (D + 128)). The mode does not change what it computes.

    forward(ContextInputs, counterfactual=False) -> ObjectContext: object_logits (N, C), object_labels (N,),
    edge_context (N, H).
    """

    def __init__(self, object_vectors: Tensor, in_channels: int, hidden_dim: int, effect_analysis: bool = False) -> None:
        super().__init__()
        num_classes, embed_dim = object_vectors.shape
        self.effect_analysis = effect_analysis
        self.obj_embed1 = glove_embedding(object_vectors)
        self.obj_embed2 = glove_embedding(object_vectors)
        self.pos_embed = position_embedding()
        object_input = in_channels + embed_dim + BOX_EMBED_DIM
        self.pred_layer = kaiming_fc(object_input, num_classes)
        self.fc_layer = kaiming_fc(object_input, hidden_dim)
        if effect_analysis:
            register_average(self, "untreated_obj_feat", object_input)
            register_average(self, "untreated_edg_feat", in_channels + BOX_EMBED_DIM)

    def averages_used_by_counterfactual(self) -> list[str]:
        return ["untreated_obj_feat", "untreated_edg_feat"]

    def forward(self, inputs: ContextInputs, counterfactual: bool = False) -> ObjectContext:
        if counterfactual and (self.training or not self.effect_analysis):
            raise ValueError("the counterfactual pass needs eval mode and effect_analysis")
        roi = inputs.roi_features
        num_rows = roi.shape[0]
        position = self.pos_embed(inputs.box_info)
        if counterfactual:
            object_input = self.untreated_obj_feat.expand(num_rows, -1)
        else:
            object_input = torch.cat([roi, label_embedding(self.obj_embed1, inputs.labels, inputs.detector_logits),
                                      position], dim=1)
        object_logits = self.pred_layer(object_input)
        object_labels = object_logits.max(dim=1).indices
        if counterfactual:
            expected_vectors = F.softmax(object_logits, dim=1) @ self.obj_embed2.weight
            edge_input = torch.cat([self.untreated_edg_feat.expand(num_rows, -1), expected_vectors], dim=1)
        else:
            edge_input = torch.cat([roi, position, self.obj_embed2(object_labels)], dim=1)
        edge_context = F.relu(self.fc_layer(edge_input))
        if self.training and self.effect_analysis:
            update_moving_average(self.untreated_obj_feat, object_input)
            update_moving_average(self.untreated_edg_feat, torch.cat([roi, position], dim=1))
        return ObjectContext(object_logits, object_labels, edge_context)

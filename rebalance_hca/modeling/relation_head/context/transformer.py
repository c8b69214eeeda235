"""SGB's TransformerContext: self-attention only, the baseline that isolates what cross-attention adds.

    object_features = SA^OBJ_LAYER(lin_obj([roi_features ; label embedding ; bbox_embed(box_info)]))
    object_logits   = out_obj(object_features)
    edge_context    = SA^REL_LAYER(lin_edge([roi_features ; object_features ; obj_embed2[object_labels]]))

Same inputs, label handling and attention cells as the hybrid co-attention context (one token per object).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import AttentionCell, AttentionOptions, PaddedLayout
from .base import BOX_EMBED_DIM, ContextBase, ContextInputs, ObjectContext


class SelfAttentionEncoder(nn.Module):
    """``num_layers`` self-attention cells: (ΣN, d) -> (ΣN, d)."""

    def __init__(self, num_layers: int, d_model: int, options: AttentionOptions) -> None:
        super().__init__()
        self.layers = nn.ModuleList([AttentionCell(d_model, options) for _ in range(num_layers)])

    def forward(self, tokens: Tensor, layout: PaddedLayout) -> Tensor:
        for layer in self.layers:
            tokens = layer(tokens, layout)
        return tokens


class TransformerContext(ContextBase):
    """SGB's TransformerContext (see the module docstring); arguments as ``HybridCoAttentionContext``'s.

    forward(ContextInputs) -> ObjectContext with edge_context (ΣN, d).
    """

    def __init__(self, mode: str, object_vectors: Tensor, in_channels: int, hidden_dim: int, obj_layers: int,
                 rel_layers: int, attention: AttentionOptions, nms_threshold: float) -> None:
        super().__init__(mode, object_vectors, hidden_dim, nms_threshold)
        self.lin_obj = nn.Linear(in_channels + self.embed_dim + BOX_EMBED_DIM, hidden_dim)
        self.lin_edge = nn.Linear(self.embed_dim + hidden_dim + in_channels, hidden_dim)
        self.context_obj = SelfAttentionEncoder(obj_layers, hidden_dim, attention)
        self.context_edge = SelfAttentionEncoder(rel_layers, hidden_dim, attention)

    def forward(self, inputs: ContextInputs) -> ObjectContext:
        layout = PaddedLayout(inputs.num_objects, inputs.roi_features.device)
        object_tokens = self.lin_obj(torch.cat([inputs.roi_features, self.label_vectors(inputs),
                                                self.bbox_embed(inputs.box_info)], dim=1))
        object_features = self.context_obj(object_tokens, layout)
        object_logits, object_labels = self.predict_objects(object_features, inputs)
        edge_tokens = self.lin_edge(torch.cat([inputs.roi_features, object_features,
                                               self.obj_embed2(object_labels)], dim=1))
        return ObjectContext(object_logits, object_labels, self.context_edge(edge_tokens, layout))

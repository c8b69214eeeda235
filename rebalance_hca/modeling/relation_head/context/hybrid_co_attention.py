"""The hybrid co-attention context of ReBalance-HCA (RB's ``SHA_Context``), as RB runs it
(docs/reference.md#hybrid-co-attention).

Two token streams per object, visual and textual, each of size d:
    V0 = lin_obj_visual([roi_features ; bbox_embed(box_info)])       (D + 128 -> d)
    T0 = lin_obj_textual(label embedding)                              (embed_dim -> d)

Object encoder (OBJ_LAYER layers): four streams tsa = tca = T0, vsa = vca = V0, each layer updating them in
RB's order (docs/reference.md#hybrid-co-attention-encoder, the asymmetric form):
    1. tsa <- SA_txt(tsa)
    2. tca <- CA_txt(query=tca, kv=vsa)     (the visual self-stream before this layer's update)
    3. vsa <- SA_vis(vsa)
    4. vca <- CA_vis(query=vca, kv=tsa)     (the textual self-stream after step 1)
    object_features = vca + vsa + tca + tsa;  object_logits = out_obj(object_features)

Edge decoder (REL_LAYER layers, docs/reference.md#hybrid-co-attention-decoder), from
    v = lin_edge_visual([roi_features ; object_features]),  t = lin_edge_textual(obj_embed2[object_labels]):
    t' = SA_txt(t) + CA_txt(query=t, kv=v);   v' = SA_vis(v) + CA_vis(query=v, kv=t)
    edge_context = v_L + t_L
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import AttentionCell, AttentionOptions, PaddedLayout
from .base import BOX_EMBED_DIM, ContextBase, ContextInputs, ObjectContext


class CoAttentionLayer(nn.Module):
    """Four cells: self- and cross-attention for the textual and the visual stream."""

    def __init__(self, d_model: int, options: AttentionOptions) -> None:
        super().__init__()
        self.text_self = AttentionCell(d_model, options, self_attention=True)
        self.text_cross = AttentionCell(d_model, options, self_attention=False)
        self.visual_self = AttentionCell(d_model, options, self_attention=True)
        self.visual_cross = AttentionCell(d_model, options, self_attention=False)

    def symmetric(self, visual: Tensor, text: Tensor, layout: PaddedLayout) -> tuple[Tensor, Tensor]:
        """(v, t) (ΣN, d) each -> (SA_vis(v) + CA_vis(v, t), SA_txt(t) + CA_txt(t, v)), both from the inputs."""
        new_text = self.text_self(text, layout) + self.text_cross(text, layout, visual)
        new_visual = self.visual_self(visual, layout) + self.visual_cross(visual, layout, text)
        return new_visual, new_text


class HybridObjectEncoder(nn.Module):
    """RB's SHA_Encoder: (V0, T0) (ΣN, d) -> object features (ΣN, d) = vca + vsa + tca + tsa."""

    def __init__(self, num_layers: int, d_model: int, options: AttentionOptions) -> None:
        super().__init__()
        self.layers = nn.ModuleList([CoAttentionLayer(d_model, options) for _ in range(num_layers)])

    def forward(self, visual: Tensor, text: Tensor, layout: PaddedLayout) -> Tensor:
        text_self, text_cross, visual_self, visual_cross = text, text, visual, visual
        for layer in self.layers:
            new_text_self = layer.text_self(text_self, layout)
            text_cross = layer.text_cross(text_cross, layout, visual_self)
            visual_self = layer.visual_self(visual_self, layout)
            visual_cross = layer.visual_cross(visual_cross, layout, new_text_self)
            text_self = new_text_self
        return (text_cross + text_self) + (visual_cross + visual_self)


class HybridEdgeDecoder(nn.Module):
    """RB's SHA_Decoder: (v, t) (ΣN, d) -> edge context (ΣN, d) = v_L + t_L, symmetric layers."""

    def __init__(self, num_layers: int, d_model: int, options: AttentionOptions) -> None:
        super().__init__()
        self.layers = nn.ModuleList([CoAttentionLayer(d_model, options) for _ in range(num_layers)])

    def forward(self, visual: Tensor, text: Tensor, layout: PaddedLayout) -> Tensor:
        for layer in self.layers:
            visual, text = layer.symmetric(visual, text, layout)
        return visual + text


class HybridCoAttentionContext(ContextBase):
    """The HCA context (see the module docstring). mode, object_vectors, hidden_dim (d), nms_threshold: see
    ``ContextBase``; in_channels: D of the box features; obj_layers / rel_layers: OBJ_LAYER / REL_LAYER.
    forward(ContextInputs) -> ObjectContext with edge_context (ΣN, d).
    """

    def __init__(self, mode: str, object_vectors: Tensor, in_channels: int, hidden_dim: int, obj_layers: int,
                 rel_layers: int, attention: AttentionOptions, nms_threshold: float) -> None:
        super().__init__(mode, object_vectors, hidden_dim, nms_threshold)
        self.lin_obj_visual = nn.Linear(in_channels + BOX_EMBED_DIM, hidden_dim)
        self.lin_obj_textual = nn.Linear(self.embed_dim, hidden_dim)
        self.encoder = HybridObjectEncoder(obj_layers, hidden_dim, attention)
        self.lin_edge_visual = nn.Linear(in_channels + hidden_dim, hidden_dim)
        self.lin_edge_textual = nn.Linear(self.embed_dim, hidden_dim)
        self.decoder = HybridEdgeDecoder(rel_layers, hidden_dim, attention)

    def forward(self, inputs: ContextInputs) -> ObjectContext:
        layout = PaddedLayout(inputs.num_objects, inputs.roi_features.device)
        visual = self.lin_obj_visual(torch.cat([inputs.roi_features, self.bbox_embed(inputs.box_info)], dim=1))
        text = self.lin_obj_textual(self.label_vectors(inputs))
        object_features = self.encoder(visual, text, layout)
        object_logits, object_labels = self.predict_objects(object_features, inputs)
        edge_visual = self.lin_edge_visual(torch.cat([inputs.roi_features, object_features], dim=1))
        edge_text = self.lin_edge_textual(self.obj_embed2(object_labels))
        return ObjectContext(object_logits, object_labels, self.decoder(edge_visual, edge_text, layout))

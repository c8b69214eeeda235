"""Attention cells of the reference's transformer (docs/reference.md#attention-cells),
batched over images with key-padding masks.

Objects of B images arrive flat, (ΣN_b, d). Every position-wise operation (projections, feed-forward,
LayerNorm) runs on the flat rows, so padding costs nothing there; only the attention itself is computed on a
(B, heads, L, ·) padded layout through ``F.scaled_dot_product_attention``, with the padded keys masked out.
Valid rows therefore equal what a per-image computation gives, and nothing of the padding leaks into them.

Blocks are post-LN as in SGB's transformer (and RB's co-attention cells):
    MHA(q, kv) = LayerNorm(Dropout(W_o · Attention(W_q q, W_k kv, W_v kv)) + q)
    FFN(x)     = LayerNorm(Dropout(W_2 ReLU(W_1 x)) + x)
    cell(q, kv) = FFN(MHA(q, kv))
W_q, W_k ~ N(0, sqrt(2 / (d + d_k))), W_v ~ N(0, sqrt(2 / (d + d_v))), W_o xavier-normal; PyTorch's default
biases and FFN weights; attention-weight dropout 0.1 (the reference hard-codes it). The projections of a
self-attention cell are one fused (q | k | v) linear layer and those of a cross-attention cell one q layer and
one fused (k | v) layer, each block initialised as above: the same function with larger matrix products.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_DROPOUT = 0.1
"""Dropout on the attention weights; SGB's ScaledDotProductAttention hard-codes 0.1."""


@dataclass(frozen=True)
class AttentionOptions:
    """The sizes every cell of a context shares (docs/reference.md#context-dimensions;
    MODEL.ROI_RELATION_HEAD.TRANSFORMER.*): heads
    (NUM_HEAD), key_dim / value_dim per head (KEY_DIM / VAL_DIM), the FFN's inner_dim (INNER_DIM), dropout on
    the output projection and the FFN (DROPOUT_RATE) and attention_dropout on the attention weights."""

    num_heads: int = 8
    key_dim: int = 64
    value_dim: int = 64
    inner_dim: int = 2048
    dropout: float = 0.1
    attention_dropout: float = ATTENTION_DROPOUT


class PaddedLayout:
    """Where the flat rows of B images go in a padded (B, L) layout, L = the largest image.

    num_objects: N_b per image (an image may have none). Built once per forward and shared by every cell.
    ``attention_mask`` (B, 1, 1, L) bool is True for keys that take part; an image without objects keeps its
    first (padding) key so that its rows, which are discarded, stay finite.
    """

    def __init__(self, num_objects: list[int], device: torch.device) -> None:
        self.num_objects = list(num_objects)
        self.batch_size = len(self.num_objects)
        self.length = max(self.num_objects, default=0)
        self.is_dense = len(set(self.num_objects)) <= 1
        lengths = torch.tensor(self.num_objects, device=device, dtype=torch.int64)
        positions = torch.arange(self.length, device=device)
        valid = positions[None, :] < lengths[:, None]
        self.flat_index = torch.nonzero(valid.reshape(-1)).squeeze(1)
        attending = positions[None, :] < lengths.clamp(min=1)[:, None]
        self.attention_mask = attending[:, None, None, :]

    @property
    def num_rows(self) -> int:
        return sum(self.num_objects)

    def pad(self, rows: Tensor) -> Tensor:
        """(ΣN_b, C) -> (B, L, C), zeros in the padding (a view when every image has L objects)."""
        if self.is_dense:
            return rows.reshape(self.batch_size, self.length, rows.shape[-1])
        padded = rows.new_zeros(self.batch_size * self.length, rows.shape[-1])
        padded = padded.index_copy(0, self.flat_index, rows)
        return padded.reshape(self.batch_size, self.length, rows.shape[-1])

    def unpad(self, padded: Tensor) -> Tensor:
        """(B, L, C) -> (ΣN_b, C), the valid rows in image order."""
        flat = padded.reshape(self.batch_size * self.length, padded.shape[-1])
        return flat if self.is_dense else flat.index_select(0, self.flat_index)


def _init_projection(layer: nn.Linear, blocks: list[tuple[int, float]]) -> None:
    """Normal init of consecutive row blocks of ``layer.weight``: [(rows, std), ...] (SGB's MHA init)."""
    with torch.no_grad():
        start = 0
        for rows, std in blocks:
            layer.weight[start:start + rows].normal_(0.0, std)
            start += rows


class MultiHeadAttention(nn.Module):
    """Post-LN multi-head attention with the residual on the query input.

    d_model: token size d; num_heads h; key_dim d_k; value_dim d_v; dropout: on the output projection;
    attention_dropout: on the attention weights. ``self_attention`` fuses the q, k and v projections.
    """

    def __init__(self, d_model: int, num_heads: int, key_dim: int, value_dim: int, dropout: float,
                 attention_dropout: float = ATTENTION_DROPOUT, self_attention: bool = True) -> None:
        super().__init__()
        self.num_heads, self.key_dim, self.value_dim = num_heads, key_dim, value_dim
        self.self_attention = self_attention
        self.attention_dropout = attention_dropout
        qk_std = math.sqrt(2.0 / (d_model + key_dim))
        v_std = math.sqrt(2.0 / (d_model + value_dim))
        qk_rows, v_rows = num_heads * key_dim, num_heads * value_dim
        if self_attention:
            self.qkv = nn.Linear(d_model, 2 * qk_rows + v_rows)
            _init_projection(self.qkv, [(qk_rows, qk_std), (qk_rows, qk_std), (v_rows, v_std)])
        else:
            self.q = nn.Linear(d_model, qk_rows)
            self.kv = nn.Linear(d_model, qk_rows + v_rows)
            _init_projection(self.q, [(qk_rows, qk_std)])
            _init_projection(self.kv, [(qk_rows, qk_std), (v_rows, v_std)])
        self.out = nn.Linear(v_rows, d_model)
        nn.init.xavier_normal_(self.out.weight)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def _projections(self, query: Tensor, key_value: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        qk_rows = self.num_heads * self.key_dim
        if self.self_attention:
            return self.qkv(query).split([qk_rows, qk_rows, self.num_heads * self.value_dim], dim=-1)
        keys, values = self.kv(key_value).split([qk_rows, self.num_heads * self.value_dim], dim=-1)
        return self.q(query), keys, values

    def forward(self, query: Tensor, layout: PaddedLayout, key_value: Tensor | None = None) -> Tensor:
        """query (ΣN_b, d); key_value (ΣN_b, d) for cross-attention (None: self-attention) -> (ΣN_b, d)."""
        if self.self_attention != (key_value is None):
            raise ValueError("a self-attention block takes no key_value; a cross-attention block needs one")
        queries, keys, values = self._projections(query, key_value)
        attended = F.scaled_dot_product_attention(
            self._heads(layout.pad(queries), self.key_dim), self._heads(layout.pad(keys), self.key_dim),
            self._heads(layout.pad(values), self.value_dim), attn_mask=layout.attention_mask,
            dropout_p=self.attention_dropout if self.training else 0.0)
        batch, _, length, _ = attended.shape
        attended = layout.unpad(attended.transpose(1, 2).reshape(batch, length, -1))
        return self.norm(self.dropout(self.out(attended)) + query)

    def _heads(self, padded: Tensor, head_dim: int) -> Tensor:
        """(B, L, h * head_dim) -> (B, h, L, head_dim)."""
        batch, length, _ = padded.shape
        return padded.reshape(batch, length, self.num_heads, head_dim).transpose(1, 2)


class FeedForward(nn.Module):
    """Position-wise LayerNorm(Dropout(W_2 ReLU(W_1 x)) + x); (..., d) -> (..., d)."""

    def __init__(self, d_model: int, inner_dim: int, dropout: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, inner_dim)
        self.w2 = nn.Linear(inner_dim, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.dropout(self.w2(F.relu(self.w1(x)))) + x)


class AttentionCell(nn.Module):
    """One cell, FFN(MHA(query, key_value)): self-attention (SA) or cross-attention (CA), own parameters.

    forward(query (ΣN_b, d), layout, key_value (ΣN_b, d) or None) -> (ΣN_b, d).
    """

    def __init__(self, d_model: int, options: AttentionOptions, self_attention: bool = True) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(d_model, options.num_heads, options.key_dim, options.value_dim,
                                            options.dropout, options.attention_dropout, self_attention)
        self.feed_forward = FeedForward(d_model, options.inner_dim, options.dropout)

    def forward(self, query: Tensor, layout: PaddedLayout, key_value: Tensor | None = None) -> Tensor:
        return self.feed_forward(self.attention(query, layout, key_value))

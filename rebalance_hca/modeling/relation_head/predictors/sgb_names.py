"""Renaming an SGB predictor's state dict to one of ours (the ``from_sgb_state`` classmethods).

Keys are relative to SGB's ``roi_heads.relation.predictor.`` and to our predictor module.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
from torch import Tensor

DECODER_PREFIX = "context_layer.decoder_rnn."
"""SGB builds its label decoders in PredCls too, where they are never run; ours do not exist there."""


def rename_sgb_state(sgb_state: Mapping[str, Tensor], renames: Sequence[tuple[str, str]],
                     dropped: Sequence[str], required: Sequence[str], predictor: str) -> dict[str, Tensor]:
    """SGB's predictor state with its keys renamed to ours.

    renames: (SGB prefix, our prefix) pairs, the first whose SGB prefix starts a key renames it (a prefix
    may be a whole key); dropped: SGB key prefixes that map to nothing (state SGB keeps but we do not have);
    required: our key prefixes of which the result must fill at least one key each. Raises ValueError naming
    every SGB key that no rule maps and every required prefix left unfilled, for ``predictor``.
    """
    state, unmapped = {}, []
    for key, value in sgb_state.items():
        if key.startswith(tuple(dropped)):
            continue
        for sgb_prefix, our_prefix in renames:
            if key.startswith(sgb_prefix):
                state[our_prefix + key[len(sgb_prefix):]] = value
                break
        else:
            unmapped.append(key)
    unfilled = [prefix for prefix in required if not any(key.startswith(prefix) for key in state)]
    if unmapped or unfilled:
        problems = []
        if unmapped:
            problems.append(f"SGB keys with no counterpart in ours: {', '.join(sorted(unmapped))}")
        if unfilled:
            problems.append(f"our entries the SGB state does not fill: {', '.join(unfilled)}")
        raise ValueError(f"SGB {predictor} state does not map onto ours; " + "; ".join(problems))
    return state


def decoder_rule(mode: str | None) -> tuple[list[str], list[str]]:
    """(dropped, required) additions for SGB's label decoder in ``mode``: dropped in PredCls, required in
    SGCls / SGDet, mapped when present if the mode is not given (None)."""
    if mode == "predcls":
        return [DECODER_PREFIX], []
    if mode in ("sgcls", "sgdet"):
        return [], ["context.decoder_rnn."]
    return [], []


_SGB_TRANSFORMER_CELL = re.compile(r"^context_layer\.context_(obj|edge)\.layer_stack\.(\d+)\.")
_RB_HYBRID_CELL = re.compile(r"^context_layer\.context_(obj|edge)\.cross_module\.(\d+)\.(SA|CA)_Cell_(vis|txt)\."
                             r"(?:SA|CA)_transformer_encoder\.transformer_layer\.")
_HYBRID_STACKS = {"obj": "encoder", "edge": "decoder"}
_HYBRID_CELLS = {("SA", "vis"): "visual_self", ("SA", "txt"): "text_self", ("CA", "vis"): "visual_cross",
                 ("CA", "txt"): "text_cross"}


def _attention_cells(keys) -> dict[str, tuple[str, bool]]:
    """{SGB cell prefix: (our cell prefix, self-attention)} of the attention cells among SGB predictor
    ``keys``: SGB's TransformerContext layers (``context_layer.context_{obj,edge}.layer_stack.L.``, all self-
    attention) and RB's SHA_Context cells (``context_layer.context_{obj,edge}.cross_module.L.{SA,CA}_Cell_
    {vis,txt}.*_transformer_encoder.transformer_layer.``)."""
    cells = {}
    for key in keys:
        match = _SGB_TRANSFORMER_CELL.match(key)
        if match:
            cells[match[0]] = (f"context.context_{match[1]}.layers.{match[2]}.", True)
            continue
        match = _RB_HYBRID_CELL.match(key)
        if match:
            cells[match[0]] = (f"context.{_HYBRID_STACKS[match[1]]}.layers.{match[2]}."
                               f"{_HYBRID_CELLS[(match[3], match[4])]}.", match[3] == "SA")
    return cells


def convert_attention_cells(sgb_state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """(our state of the attention cells, the SGB keys used) of an SGB / RB attention context.

    SGB's cell (``slf_attn.{w_qs, w_ks, w_vs, fc, layer_norm}``, ``pos_ffn.{w_1, w_2, layer_norm}``, the FFN as
    1x1 Conv1d (out, in, 1)) becomes our ``AttentionCell``: a self-attention cell fuses the three projections
    into ``attention.qkv`` (rows q, k, v), a cross-attention cell keeps ``attention.q`` and fuses
    ``attention.kv`` (rows k, v); ``fc`` -> ``attention.out``, ``layer_norm`` -> ``attention.norm``; the FFN
    convolutions become ``feed_forward.w1`` / ``w2`` (the kernel dimension dropped), its norm
    ``feed_forward.norm``. A cell missing any of these names raises KeyError naming the key."""
    state, used = {}, []

    def take(key: str) -> Tensor:
        if key not in sgb_state:
            raise KeyError(f"SGB attention cell entry {key} is missing")
        used.append(key)
        return sgb_state[key]

    for sgb_cell, (our_cell, self_attention) in _attention_cells(sgb_state).items():
        for kind in ("weight", "bias"):
            query, key_, value = (take(f"{sgb_cell}slf_attn.{name}.{kind}") for name in ("w_qs", "w_ks", "w_vs"))
            if self_attention:
                state[f"{our_cell}attention.qkv.{kind}"] = torch.cat([query, key_, value])
            else:
                state[f"{our_cell}attention.q.{kind}"] = query
                state[f"{our_cell}attention.kv.{kind}"] = torch.cat([key_, value])
            state[f"{our_cell}attention.out.{kind}"] = take(f"{sgb_cell}slf_attn.fc.{kind}")
            state[f"{our_cell}attention.norm.{kind}"] = take(f"{sgb_cell}slf_attn.layer_norm.{kind}")
            for sgb_name, our_name in (("w_1", "w1"), ("w_2", "w2")):
                tensor = take(f"{sgb_cell}pos_ffn.{sgb_name}.{kind}")
                state[f"{our_cell}feed_forward.{our_name}.{kind}"] = tensor.squeeze(-1) if kind == "weight" else tensor
            state[f"{our_cell}feed_forward.norm.{kind}"] = take(f"{sgb_cell}pos_ffn.layer_norm.{kind}")
    return state, used

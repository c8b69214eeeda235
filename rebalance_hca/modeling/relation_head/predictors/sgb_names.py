"""Renaming an SGB predictor's state dict to one of ours (the ``from_sgb_state`` classmethods).

Keys are relative to SGB's ``roi_heads.relation.predictor.`` and to our predictor module.
"""
from __future__ import annotations

from typing import Mapping, Sequence

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

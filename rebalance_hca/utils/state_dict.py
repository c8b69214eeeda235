"""Strict state-dict loading whose error lists every key that does not fit.

``torch.nn.Module.load_state_dict(strict=True)`` stops at the first shape mismatch with a message that
does not name the file; this module reports missing keys, unexpected keys and shape mismatches together,
naming where the state came from.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

_LISTED_PER_KIND = 30


class StateDictMismatchError(RuntimeError):
    """A state dict (checkpoint, weight file) whose key names or tensor shapes do not fit a module."""

    def __init__(self, source: str, missing: list[str], unexpected: list[str],
                 shape_mismatches: list[tuple[str, tuple, tuple]], listed_per_kind: int | None = _LISTED_PER_KIND
                 ) -> None:
        self.source = source
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatches = shape_mismatches
        super().__init__(_describe(source, missing, unexpected, shape_mismatches, listed_per_kind))


def _listed(items: list[str], limit: int | None) -> str:
    shown = items[:limit]
    more = f"\n    ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return "".join(f"\n    {item}" for item in shown) + more


def _describe(source: str, missing: list[str], unexpected: list[str],
              shape_mismatches: list[tuple[str, tuple, tuple]], limit: int | None) -> str:
    """The error message; at most ``limit`` keys listed per kind (None: all)."""
    parts = [f"{source} does not fit the model:"]
    if missing:
        parts.append(f"  {len(missing)} key(s) the model has but the file lacks:{_listed(missing, limit)}")
    if unexpected:
        parts.append(f"  {len(unexpected)} key(s) in the file that the model does not have:"
                     f"{_listed(unexpected, limit)}")
    if shape_mismatches:
        rows = [f"{key}: file {list(file_shape)} vs model {list(model_shape)}"
                for key, file_shape, model_shape in shape_mismatches]
        parts.append(f"  {len(rows)} key(s) with a different shape:{_listed(rows, limit)}")
    return "\n".join(parts)


def find_mismatches(model_state: Mapping[str, torch.Tensor], loaded_state: Mapping[str, torch.Tensor]
                    ) -> tuple[list[str], list[str], list[tuple[str, tuple, tuple]]]:
    """(missing keys, unexpected keys, [(key, loaded shape, model shape)]) between two state dicts."""
    missing = sorted(set(model_state) - set(loaded_state))
    unexpected = sorted(set(loaded_state) - set(model_state))
    shape_mismatches = [
        (key, tuple(loaded_state[key].shape), tuple(model_state[key].shape))
        for key in sorted(set(model_state) & set(loaded_state))
        if tuple(loaded_state[key].shape) != tuple(model_state[key].shape)
    ]
    return missing, unexpected, shape_mismatches


def check_state_dict_fits(model_state: Mapping[str, torch.Tensor], loaded_state: Mapping[str, torch.Tensor],
                          source: str) -> None:
    """Raise StateDictMismatchError (naming ``source``) unless both have the same keys and shapes."""
    missing, unexpected, shape_mismatches = find_mismatches(model_state, loaded_state)
    if missing or unexpected or shape_mismatches:
        raise StateDictMismatchError(source, missing, unexpected, shape_mismatches)


def load_state_dict_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` only if every key and shape fits; else raise StateDictMismatchError.

    ``source`` names the origin (e.g. the file path) in the error message.
    """
    check_state_dict_fits(module.state_dict(), state, source)
    module.load_state_dict(state, strict=True)


def replace_substate(state: Mapping[str, torch.Tensor], prefix: str,
                     update: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``state`` with its entries under ``prefix`` (e.g. "relation_head.") replaced by ``update`` of them:
    ``update`` gets and returns those entries with keys relative to ``prefix``."""
    inner = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    return {**{key: value for key, value in state.items() if not key.startswith(prefix)},
            **{prefix + key: value for key, value in update(inner).items()}}

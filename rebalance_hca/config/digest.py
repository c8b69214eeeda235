"""A digest of part of a config, for the caches that must be rebuilt when those keys change."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence


def _value(cfg, dotted_key: str) -> Any:
    node = cfg
    for part in dotted_key.split("."):
        node = node[part]
    return node


def _without(value: Any, dotted_key: str) -> Any:
    """A plain copy of the (nested) config ``value`` without the entry at ``dotted_key`` (if present)."""
    if not isinstance(value, dict):
        return value
    head, _, rest = dotted_key.partition(".")
    return {key: (_without(item, rest) if key == head and rest else item)
            for key, item in value.items() if not (key == head and not rest)}


def config_digest(cfg, keys: Sequence[str], excluded: Sequence[str] = ()) -> str:
    """sha256 (hex) of the config entries ``keys`` (dotted: sections or single keys), leaving out the
    ``excluded`` dotted keys (which lie inside those sections)."""
    relevant = {key: _value(cfg, key) for key in keys}
    for dotted in excluded:
        relevant = _without(relevant, dotted)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()

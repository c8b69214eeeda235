"""Build a frozen config: defaults < ``--config-file`` yaml < command-line ``KEY VALUE`` pairs."""
from __future__ import annotations

import os
from typing import Sequence

from yacs.config import CfgNode

from .defaults import _C


class ConfigError(ValueError):
    """A config file or command-line override that cannot be applied; the message names the key."""


def get_cfg_defaults() -> CfgNode:
    """A fresh, mutable copy of the defaults."""
    return _C.clone()


def load_config(config_file: str | None = None, opts: Sequence[str] = (), freeze: bool = True) -> CfgNode:
    """Merge ``config_file`` then ``opts`` (alternating KEY VALUE strings) into the defaults.

    Raises ConfigError naming the key (and the file) for an unknown key, a value of the wrong type,
    an odd number of override tokens, or a config file that does not exist.
    """
    cfg = get_cfg_defaults()
    if config_file:
        if not os.path.isfile(config_file):
            raise ConfigError(f"config file not found: {config_file}")
        with open(config_file, encoding="utf-8") as handle:
            file_cfg = cfg.load_cfg(handle)
        _merge_checked(cfg, file_cfg, source=config_file)
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must be KEY VALUE pairs; got an odd number: {opts}")
    for key, value in zip(opts[0::2], opts[1::2]):
        _set_checked(cfg, key, value, source="command line")
    if freeze:
        cfg.freeze()
    return cfg


def _merge_checked(cfg: CfgNode, other: CfgNode, source: str, prefix: str = "") -> None:
    for key, value in other.items():
        full_key = f"{prefix}{key}"
        if key not in cfg:
            raise ConfigError(f"{source}: unknown config key {full_key}")
        if isinstance(value, CfgNode):
            if not isinstance(cfg[key], CfgNode):
                raise ConfigError(f"{source}: {full_key} is a value, not a section")
            _merge_checked(cfg[key], value, source, prefix=f"{full_key}.")
        else:
            cfg[key] = _coerce(cfg[key], CfgNode._decode_cfg_value(value), full_key, source)


def _set_checked(cfg: CfgNode, full_key: str, raw_value: str, source: str) -> None:
    node = cfg
    parts = full_key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, CfgNode) or part not in node:
            raise ConfigError(f"{source}: unknown config key {full_key}")
        if depth < len(parts) - 1:
            node = node[part]
    leaf = parts[-1]
    if isinstance(node[leaf], CfgNode):
        raise ConfigError(f"{source}: {full_key} is a section, not a value")
    node[leaf] = _coerce(node[leaf], CfgNode._decode_cfg_value(raw_value), full_key, source)


def _coerce(default, value, full_key: str, source: str):
    """Return ``value`` converted to the type of ``default``, or raise ConfigError naming the key."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (tuple, list)):
        if isinstance(value, (tuple, list)):
            return type(default)(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return type(default)([value])
    elif default is None:
        return value
    raise ConfigError(
        f"{source}: {full_key} expects {type(default).__name__} (default {default!r}), got {value!r}"
    )

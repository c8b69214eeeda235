"""Build a frozen config: defaults < ``--config-file`` yaml < command-line ``KEY VALUE`` pairs."""
from __future__ import annotations

import os
from typing import Any, Sequence

import yaml
from yacs.config import CfgNode

from .defaults import _C
from .unsupported import config_value, unsupported_settings


class ConfigError(ValueError):
    """A config file or command-line override that cannot be applied; the message names the key."""


def get_cfg_defaults() -> CfgNode:
    """A fresh, mutable copy of the defaults."""
    return _C.clone()


def load_config(config_file: str | None = None, opts: Sequence[str] = (), freeze: bool = True) -> CfgNode:
    """Merge ``config_file`` then ``opts`` (alternating KEY VALUE strings) into the defaults.

    Raises ConfigError naming the key (and the file) for an unknown key, a value of the wrong type, a key
    this project does not implement set to anything but its default (``unsupported.UNSUPPORTED_KEYS``), an
    odd number of override tokens, or a config file that does not exist or is not YAML (with the line).
    """
    cfg = get_cfg_defaults()
    if config_file:
        _merge_checked(cfg, _read_config_file(config_file), source=config_file)
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must be KEY VALUE pairs; got an odd number: {opts}")
    for key, value in zip(opts[0::2], opts[1::2]):
        _set_checked(cfg, key, value, source="command line")
    unsupported = unsupported_settings(cfg, _C)
    if unsupported:
        raise ConfigError("; ".join(unsupported))
    if freeze:
        cfg.freeze()
    return cfg


def _read_config_file(config_file: str) -> CfgNode:
    """The yaml file as a CfgNode; ConfigError naming the file (and the line of a YAML error) otherwise."""
    if not os.path.isfile(config_file):
        raise ConfigError(f"config file not found: {config_file}")
    try:
        with open(config_file, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{config_file}: not valid YAML{where}: {error.problem or error.context}") from error
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{config_file}: not valid YAML: {error}") from error
    if loaded is None:
        return CfgNode()
    if not isinstance(loaded, dict):
        raise ConfigError(f"{config_file}: expected a mapping of config keys, found a {type(loaded).__name__}")
    return CfgNode(loaded)


def _merge_checked(cfg: CfgNode, other: CfgNode, source: str, prefix: str = "") -> None:
    for key, value in other.items():
        full_key = f"{prefix}{key}"
        if key not in cfg:
            raise ConfigError(f"{source}: unknown config key {full_key}")
        if isinstance(value, CfgNode):
            if not isinstance(cfg[key], CfgNode):
                raise ConfigError(f"{source}: {full_key} is a value, not a section")
            _merge_checked(cfg[key], value, source, prefix=f"{full_key}.")
        elif isinstance(cfg[key], CfgNode):
            raise ConfigError(f"{source}: {full_key} is a section, not a value")
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


def _coerce(current: Any, value: Any, full_key: str, source: str) -> Any:
    """Return ``value`` converted to the type of the key's ``current`` value, or raise ConfigError naming the
    key and its default (not ``current``, which a config file may already have set)."""
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(current, str):
        if isinstance(value, str):
            return value
    elif isinstance(current, (tuple, list)):
        if isinstance(value, (tuple, list)):
            return type(current)(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return type(current)([value])
    elif current is None:
        return value
    raise ConfigError(f"{source}: {full_key} expects {type(current).__name__} (default "
                      f"{config_value(_C, full_key)!r}), got {value!r}")

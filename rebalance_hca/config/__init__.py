"""Configuration: SGB-compatible YACS defaults, loading with clear errors, and the data root."""
from .defaults import _C
from .loading import ConfigError, get_cfg_defaults, load_config
from .paths_catalog import resolve_data_dir

cfg = _C

__all__ = ["ConfigError", "cfg", "get_cfg_defaults", "load_config", "resolve_data_dir"]

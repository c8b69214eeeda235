"""The data root that the dataset catalog resolves its relative paths under (the catalog itself, the names of
every dataset family and their files, is ``rebalance_hca.data.registry``).

The root is, in order: ``DATASETS.DATA_DIR`` if non-empty, else ``$REBALANCE_HCA_DATA_DIR``, else ``datasets``
relative to the working directory. No absolute path is ever written into the repository.
"""
from __future__ import annotations

import os

DATA_DIR_ENV = "REBALANCE_HCA_DATA_DIR"


def resolve_data_dir(configured: str = "") -> str:
    """The data root: the config value, else the environment variable, else ``./datasets``."""
    root = configured or os.environ.get(DATA_DIR_ENV, "") or "datasets"
    return os.path.abspath(os.path.expanduser(root))

"""Dataset catalog with SGB's dataset names, resolved under a movable data root.

The root is, in order: ``DATASETS.DATA_DIR`` if non-empty, else ``$REBALANCE_HCA_DATA_DIR``, else ``datasets``
relative to the working directory. No absolute path is ever written into the repository.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

DATA_DIR_ENV = "REBALANCE_HCA_DATA_DIR"

_VG_FILES = {
    "img_dir": "vg/VG_100K",
    "roidb_file": "vg/VG-SGG-with-attri.h5",
    "dict_file": "vg/VG-SGG-dicts-with-attri.json",
    "image_file": "vg/image_data.json",
}


@dataclass(frozen=True)
class VGPaths:
    """Absolute paths of the four VG150 inputs of one dataset entry, and its split."""

    split: str
    img_dir: str
    roidb_file: str
    dict_file: str
    image_file: str


def resolve_data_dir(configured: str = "") -> str:
    """The data root: the config value, else the environment variable, else ``./datasets``."""
    root = configured or os.environ.get(DATA_DIR_ENV, "") or "datasets"
    return os.path.abspath(os.path.expanduser(root))


class DatasetCatalog:
    """Maps SGB dataset names (``VG_stanford_filtered_with_attribute_{train,val,test}``) to file paths."""

    PREFIX = "VG_stanford_filtered_with_attribute_"
    SPLITS = ("train", "val", "test")

    @classmethod
    def names(cls) -> list[str]:
        return [cls.PREFIX + split for split in cls.SPLITS]

    @classmethod
    def get(cls, name: str, data_dir: str = "") -> VGPaths:
        """Paths for ``name``; raises KeyError listing the known names when ``name`` is not one."""
        if not name.startswith(cls.PREFIX) or name[len(cls.PREFIX):] not in cls.SPLITS:
            raise KeyError(f"unknown dataset name {name!r}; known names: {', '.join(cls.names())}")
        root = resolve_data_dir(data_dir)
        files = {key: os.path.join(root, rel) for key, rel in _VG_FILES.items()}
        return VGPaths(split=name[len(cls.PREFIX):], **files)

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


_OI_FOLDER = "openimages/open_image_v6"


@dataclass(frozen=True)
class OIPaths:
    """Absolute paths of an Open Images V6 entry in PySGG's layout
    (docs/reference.md#oi-release-layout), and its split."""

    split: str
    img_dir: str
    ann_file: str
    dict_file: str


def resolve_data_dir(configured: str = "") -> str:
    """The data root: the config value, else the environment variable, else ``./datasets``."""
    root = configured or os.environ.get(DATA_DIR_ENV, "") or "datasets"
    return os.path.abspath(os.path.expanduser(root))


class DatasetCatalog:
    """Maps SGB's VG150 names (``VG_stanford_filtered_with_attribute_{train,val,test}``) to ``VGPaths`` and
    PySGG's Open Images V6 names (``openimage_v6_{train,val,test}``) to ``OIPaths``."""

    PREFIX = "VG_stanford_filtered_with_attribute_"
    OI_PREFIX = "openimage_v6_"
    SPLITS = ("train", "val", "test")

    @classmethod
    def names(cls) -> list[str]:
        return [prefix + split for prefix in (cls.PREFIX, cls.OI_PREFIX) for split in cls.SPLITS]

    @classmethod
    def get(cls, name: str, data_dir: str = "") -> VGPaths | OIPaths:
        """Paths for ``name``; raises KeyError listing the known names when ``name`` is not one."""
        if name not in cls.names():
            raise KeyError(f"unknown dataset name {name!r}; known names: {', '.join(cls.names())}")
        root = resolve_data_dir(data_dir)
        if name.startswith(cls.OI_PREFIX):
            split = name[len(cls.OI_PREFIX):]
            folder = os.path.join(root, _OI_FOLDER)
            return OIPaths(split=split, img_dir=os.path.join(folder, "images"),
                           ann_file=os.path.join(folder, "annotations", f"vrd-{split}-anno.json"),
                           dict_file=os.path.join(folder, "annotations", "categories_dict.json"))
        files = {key: os.path.join(root, rel) for key, rel in _VG_FILES.items()}
        return VGPaths(split=name[len(cls.PREFIX):], **files)

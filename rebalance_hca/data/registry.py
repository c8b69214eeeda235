"""The dataset-family registry: the one place that names every family. A catalog name (DATASETS.TRAIN / VAL /
TEST) belongs to exactly one registered family, which resolves it to paths and supplies everything that
differs between families (``DatasetFamily``). Adding a family = its subfolder of ``data/`` + one line in
``FAMILIES`` (docs/data.md#adding-a-dataset).
"""
from __future__ import annotations

from ..config.paths_catalog import resolve_data_dir
from .family import DatasetFamily, DatasetPaths
from .gqa.family import GQA200Family
from .oi.family import OpenImagesV6Family
from .scene_graph_json.family import SceneGraphJSONFamily
from .vg.family import VG150Family

FAMILIES: tuple[DatasetFamily, ...] = (
    VG150Family(),
    OpenImagesV6Family(),
    GQA200Family(),
    SceneGraphJSONFamily(),
)


class UnknownDatasetError(KeyError):
    """A catalog name that no registered family owns; the message lists the known names per family."""


def known_dataset_names() -> str:
    """Every family's names, for messages: ``VG150: name, ...; Open Images V6: name, ...``."""
    return "; ".join(f"{family.name}: {', '.join(family.dataset_names())}" for family in FAMILIES)


def family_of(name: str) -> DatasetFamily:
    """The registered family that owns the catalog name ``name``; UnknownDatasetError when none does."""
    owners = [family for family in FAMILIES if family.owns(name)]
    if not owners:
        raise UnknownDatasetError(f"unknown dataset name {name!r}; known names: {known_dataset_names()}")
    if len(owners) > 1:
        raise RuntimeError(f"dataset name {name!r} is claimed by several families: "
                           f"{', '.join(family.name for family in owners)}")
    return owners[0]


def family_keys() -> tuple[str, ...]:
    """Every family's layout key (``DatasetFamily.key``), e.g. for ``tools/convert_dataset.py --to``."""
    return tuple(family.key for family in FAMILIES)


def family_with_key(key: str) -> DatasetFamily:
    """The registered family whose layout key is ``key``; ValueError listing the keys when none is."""
    for family in FAMILIES:
        if family.key == key:
            return family
    raise ValueError(f"unknown dataset layout {key!r}; known: {', '.join(family_keys())}")


def dataset_paths(name: str, data_dir: str = "") -> DatasetPaths:
    """The files of catalog name ``name`` under the data root (``data_dir``, e.g. DATASETS.DATA_DIR, else
    ``$REBALANCE_HCA_DATA_DIR``, else ``./datasets``)."""
    return family_of(name).paths(name, resolve_data_dir(data_dir))

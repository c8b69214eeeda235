"""VG150 (SGB's h5 + dicts layout): ``files`` reads and checks the files, ``index`` selects a split,
``dataset`` is ``VGDataset``, ``statistics`` counts the frequency statistics, ``family`` registers it all."""
from .dataset import VGDataset
from .family import VG150Family, VGPaths

__all__ = ["VG150Family", "VGDataset", "VGPaths"]

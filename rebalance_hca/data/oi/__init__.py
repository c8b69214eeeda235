"""Open Images V6 (PySGG's processed layout): ``files`` reads and checks the files, ``dataset`` is ``OIDataset``
(with the split selection), ``statistics`` counts the frequency statistics, ``family`` registers it all."""
from .dataset import OIDataset, select_oi_split
from .family import OIPaths, OpenImagesV6Family

__all__ = ["OIDataset", "OIPaths", "OpenImagesV6Family", "select_oi_split"]

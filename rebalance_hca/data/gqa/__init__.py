"""GQA-200 (SHA-GCL's release): ``files`` reads and checks the files, ``dataset`` is ``GQADataset`` (with the
split selection), ``statistics`` counts the frequency statistics, ``family`` registers it all."""
from .dataset import GQADataset, select_gqa_split
from .family import GQA200Family, GQAPaths

__all__ = ["GQA200Family", "GQADataset", "GQAPaths", "select_gqa_split"]

"""Data layer: dataset families (VG150 in ``vg/``, Open Images V6 in ``oi/``, GQA-200 in ``gqa/``) behind one
registry (``registry.FAMILIES``, contract in ``family.DatasetFamily``), and what they share: splits, samples,
transforms, loaders, statistics, GloVe vectors, resampling, SynthVG (in any of the three layouts).
docs/data.md#adding-a-dataset.

Loader batches are ``(images, targets, indices)``:
    images:  torchvision ImageList, tensors (B, 3, H, W) float32 normalised and zero-padded to
             DATALOADER.SIZE_DIVISIBILITY; image_sizes [(h, w)] of the resized, unpadded images.
    targets: list of dicts ("boxes" (N, 4) xyxy in the resized frame, "labels" (N,), "attributes" (N, 10),
             "relation" (N, N)); see ``rebalance_hca.data.scene_graph_dataset``.
    indices: dataset indices; ``dataset.get_groundtruth(i, evaluation=True)`` gives the original-frame GT.
"""
from .build import build_dataset, get_dataset_statistics, get_glove_embeddings, make_data_loader
from .family import DatasetFamily, DatasetPaths, SplitOptions, TrainVocabulary
from .files import DataFormatError
from .gqa.dataset import GQADataset
from .oi.dataset import OIDataset
from .registry import FAMILIES, UnknownDatasetError, dataset_paths, family_of
from .scene_graph_dataset import SceneGraphDataset
from .split_index import RebalanceSpec
from .statistics import FrequencyStatistics
from .vg.dataset import VGDataset

__all__ = ["DataFormatError", "DatasetFamily", "DatasetPaths", "FAMILIES", "FrequencyStatistics", "GQADataset",
           "OIDataset", "RebalanceSpec", "SceneGraphDataset", "SplitOptions", "TrainVocabulary", "UnknownDatasetError",
           "VGDataset", "build_dataset", "dataset_paths", "family_of", "get_dataset_statistics",
           "get_glove_embeddings", "make_data_loader"]

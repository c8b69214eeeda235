"""Data layer for VG150 and Open Images V6: files, splits, samples, transforms, loaders, statistics, GloVe
vectors, resampling, SynthVG (in either format).

Loader batches are ``(images, targets, indices)``:
    images:  torchvision ImageList, tensors (B, 3, H, W) float32 normalised and zero-padded to
             DATALOADER.SIZE_DIVISIBILITY; image_sizes [(h, w)] of the resized, unpadded images.
    targets: list of dicts ("boxes" (N, 4) xyxy in the resized frame, "labels" (N,), "attributes" (N, 10),
             "relation" (N, N)); see ``rebalance_hca.data.scene_graph_dataset``.
    indices: dataset indices; ``dataset.get_groundtruth(i, evaluation=True)`` gives the original-frame GT.
"""
from .build import build_dataset, get_dataset_statistics, get_glove_embeddings, make_data_loader
from .statistics import FrequencyStatistics
from .oi import OIDataset
from .scene_graph_dataset import SceneGraphDataset
from .vg import VGDataset
from .vg_files import DataFormatError
from .vg_index import RebalanceSpec

__all__ = ["DataFormatError", "FrequencyStatistics", "OIDataset", "RebalanceSpec", "SceneGraphDataset", "VGDataset",
           "build_dataset", "get_dataset_statistics", "get_glove_embeddings", "make_data_loader"]

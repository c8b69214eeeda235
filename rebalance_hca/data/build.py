"""The single place where the config meets the data layer: datasets, rebalancing, loaders."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..utils.seed import derived_seed
from .collate import BatchCollator
from .family import SplitOptions, TrainVocabulary
from .files import DataFormatError
from .glove import embedding_for_names
from .registry import dataset_paths, family_of
from .loader_errors import DataErrorReportingLoader
from .resampling import ResamplingOptions
from .scene_graph_dataset import SceneGraphDataset
from .split_index import RebalanceSpec
from .statistics import FrequencyStatistics
from .samplers import InferenceBatchSampler, IterationBatchSampler, SeededDataset, aspect_ratio_groups
from .transforms import build_transforms

MODES = ("train", "val", "test")
RESAMPLING_METHODS = ("bilvl",)


def train_vocabulary(cfg) -> TrainVocabulary:
    """The vocabulary and predicate counts of DATASETS.TRAIN, from its family."""
    name = dataset_name(cfg, "train")
    return family_of(name).train_vocabulary(dataset_paths(name, cfg.DATASETS.DATA_DIR))


def dataset_name(cfg, mode: str) -> str:
    """The one catalog name configured for ``mode`` (DATASETS.TRAIN / VAL / TEST)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    key = f"DATASETS.{mode.upper()}"
    names = getattr(cfg.DATASETS, mode.upper())
    if len(names) != 1:
        raise ValueError(f"{key} must name exactly one dataset, got {list(names)}")
    return names[0]


def rebalance_spec(cfg) -> RebalanceSpec:
    """Stage-2 rebalancing from MODEL.ROI_RELATION_HEAD.REBALANCE and the train predicate counts
    (``train_vocabulary``)."""
    vocabulary = train_vocabulary(cfg)
    if not vocabulary.predicate_order:
        raise DataFormatError(f"{vocabulary.source}: predicate_count is needed for the stage-2 rebalanced split")
    options = cfg.MODEL.ROI_RELATION_HEAD.REBALANCE
    return RebalanceSpec(predicate_order=vocabulary.predicate_order, top_k=options.TOP_K_PREDICATES,
                         max_instances=options.MAX_INSTANCES)


def resampling_options(cfg) -> ResamplingOptions | None:
    """BGNN's bi-level resampling from MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING*, or None when it is off."""
    head = cfg.MODEL.ROI_RELATION_HEAD
    if not head.DATA_RESAMPLING:
        return None
    if head.DATA_RESAMPLING_METHOD not in RESAMPLING_METHODS:
        raise ValueError(f"MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING_METHOD must be one of {RESAMPLING_METHODS}, "
                         f"got {head.DATA_RESAMPLING_METHOD!r}")
    param = head.DATA_RESAMPLING_PARAM
    return ResamplingOptions(param.REPEAT_FACTOR, param.INSTANCE_DROP_RATE, derived_seed(cfg.SEED, "bilevel resampling"))


def build_dataset(cfg, mode: str, with_transforms: bool = True, augment: bool | None = None,
                  rebalance: bool | None = None) -> SceneGraphDataset:
    """The split for ``mode`` of the catalog name's family (``registry.family_of``), with the references'
    filters as the config implies (docs/reference.md#vg150-split-selection, #rebalanced-split, #oi-loading).

    rebalance: the stage-2 rebalanced train split; by default when MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER
    is on (stage 2). False gives stage 1's full train split whatever the stage (statistics, confusion matrix).
    augment: the training transforms (random resize, flips, jitter) instead of the test ones; by default
    for mode "train" only (inference over the train split, e.g. for the confusion matrix, passes False).
    Bi-level resampling (MODEL.ROI_RELATION_HEAD.DATA_RESAMPLING) applies to the training split with its
    training transforms only.
    """
    name = dataset_name(cfg, mode)
    paths = dataset_paths(name, cfg.DATASETS.DATA_DIR)
    is_train_split = paths.split == "train"
    rebalanced = cfg.MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER if rebalance is None else rebalance
    training = mode == "train" if augment is None else augment
    options = SplitOptions(
        filter_empty_rels=cfg.MODEL.RELATION_ON,
        filter_duplicate_rels=cfg.DATASETS.FILTER_DUPLICATE_RELS,
        rebalance=rebalance_spec(cfg) if is_train_split and rebalanced else None,
        transforms=build_transforms(cfg, is_train=training) if with_transforms else None,
        resampling=resampling_options(cfg) if is_train_split and training and with_transforms else None,
    )
    return family_of(name).build_dataset(cfg, paths, options)


def _rank_and_world_size(is_distributed: bool) -> tuple[int, int]:
    if is_distributed and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _per_rank_batch(total: int, world_size: int, key: str) -> int:
    if total % world_size:
        raise ValueError(f"{key} ({total}) must be divisible by the number of processes ({world_size})")
    return total // world_size


def make_data_loader(cfg, mode: str = "train", is_distributed: bool = False, start_iter: int = 0,
                     dataset: SceneGraphDataset | None = None) -> torch.utils.data.DataLoader:
    """Batches ``(ImageList, targets, indices)`` for ``mode`` (see ``rebalance_hca.data`` docs).

    Train: SOLVER.MAX_ITER - start_iter batches of SOLVER.IMS_PER_BATCH / world_size images.
    Val/test: one pass in order, TEST.IMS_PER_BATCH / world_size images, sharded across ranks.

    Loading never touches the global generators: ``loader.dataset`` is a ``SeededDataset`` over the
    family's dataset (whose attributes it passes through) that computes each sample with seeds from (SEED, epoch,
    index), and the loader draws its workers' base seed from its own generator, seeded from (SEED, rank,
    mode). Batches are therefore the same for any DATALOADER.NUM_WORKERS and after a resume.
    """
    dataset = dataset if dataset is not None else build_dataset(cfg, mode)
    rank, world_size = _rank_and_world_size(is_distributed)
    if mode == "train":
        resampling = getattr(dataset, "resampling", None)
        repeated = resampling.repeated_indices() if resampling is not None else None
        batch_sampler = IterationBatchSampler(
            aspect_ratio_groups(dataset.image_aspect_ratios()),
            _per_rank_batch(cfg.SOLVER.IMS_PER_BATCH, world_size, "SOLVER.IMS_PER_BATCH"),
            num_iterations=cfg.SOLVER.MAX_ITER, start_iter=start_iter, seed=cfg.SEED,
            rank=rank, world_size=world_size, group_by_aspect=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            repeated_indices=repeated,
        )
    else:
        batch_sampler = InferenceBatchSampler(
            len(dataset), _per_rank_batch(cfg.TEST.IMS_PER_BATCH, world_size, "TEST.IMS_PER_BATCH"),
            rank=rank, world_size=world_size, seed=cfg.SEED,
        )
    return DataErrorReportingLoader(
        SeededDataset(dataset),
        batch_sampler=batch_sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=BatchCollator(cfg.DATALOADER.SIZE_DIVISIBILITY),
        generator=torch.Generator().manual_seed(derived_seed(cfg.SEED, "loader", rank, MODES.index(mode))),
        persistent_workers=False,
    )


def get_dataset_statistics(cfg) -> FrequencyStatistics:
    """Frequency statistics of the train split (docs/reference.md#frequency-statistics, #oi-frequency-statistics),
    cached in OUTPUT_DIR as SGB and
    PySGG do (``<train dataset name>_statistics.cache``), recomputed when the source files change."""
    name = dataset_name(cfg, "train")
    cache_file = os.path.join(cfg.OUTPUT_DIR, f"{name}_statistics.cache")
    return family_of(name).statistics(cfg, dataset_paths(name, cfg.DATASETS.DATA_DIR), cache_file)


def get_glove_embeddings(cfg, names) -> torch.Tensor:
    """GloVe vectors (len(names), MODEL.ROI_RELATION_HEAD.EMBED_DIM) for class or predicate names from
    GLOVE_DIR (docs/reference.md#glove-embeddings)."""
    return embedding_for_names(names, cfg.GLOVE_DIR, cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM)

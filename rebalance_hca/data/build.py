"""The single place where the config meets the data layer: datasets, rebalancing, loaders."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..config import DatasetCatalog
from ..utils.seed import derived_seed
from .collate import BatchCollator
from .glove import embedding_for_names
from .statistics import FrequencyStatistics, load_or_compute_statistics
from .samplers import InferenceBatchSampler, IterationBatchSampler, SeededDataset, aspect_ratio_groups
from .transforms import build_transforms
from .vg import VGDataset
from .vg_files import DataFormatError, load_vocabulary
from .vg_index import RebalanceSpec

MODES = ("train", "val", "test")


def dataset_name(cfg, mode: str) -> str:
    """The one catalog name configured for ``mode`` (DATASETS.TRAIN / VAL / TEST)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    key = f"DATASETS.{mode.upper()}"
    names = getattr(cfg.DATASETS, mode.upper())
    if len(names) != 1:
        raise ValueError(f"{key} must name exactly one dataset, got {list(names)}")
    return names[0]


def rebalance_spec(cfg, dict_file: str) -> RebalanceSpec:
    """Stage-2 rebalancing from MODEL.ROI_RELATION_HEAD.REBALANCE and the dictionary's predicate counts."""
    vocabulary = load_vocabulary(dict_file)
    if not vocabulary.predicate_count:
        raise DataFormatError(f"{dict_file}: predicate_count is needed for the stage-2 rebalanced split")
    name_to_id = {name: index for index, name in enumerate(vocabulary.ind_to_predicates)}
    unknown = sorted(set(vocabulary.predicate_count) - set(name_to_id))
    if unknown:
        raise DataFormatError(f"{dict_file}: predicate_count names unknown predicates {unknown}")
    by_frequency = sorted(vocabulary.predicate_count, key=lambda name: -vocabulary.predicate_count[name])
    options = cfg.MODEL.ROI_RELATION_HEAD.REBALANCE
    return RebalanceSpec(predicate_order=tuple(name_to_id[name] for name in by_frequency),
                         top_k=options.TOP_K_PREDICATES, max_instances=options.MAX_INSTANCES)


def build_dataset(cfg, mode: str, with_transforms: bool = True, augment: bool | None = None,
                  rebalance: bool | None = None) -> VGDataset:
    """The VG150-format split for ``mode``, with SGB's filters as the config implies (SPEC §1.2, §6.3).

    rebalance: the stage-2 rebalanced train split; by default when MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER
    is on (stage 2). False gives stage 1's full train split whatever the stage (statistics, confusion matrix).
    augment: the training transforms (random resize, flips, jitter) instead of the test ones; by default
    for mode "train" only (inference over the train split, e.g. for the confusion matrix, passes False).
    """
    paths = DatasetCatalog.get(dataset_name(cfg, mode), cfg.DATASETS.DATA_DIR)
    head = cfg.MODEL.ROI_RELATION_HEAD
    is_train_split = paths.split == "train"
    rebalanced = head.WITH_CLEAN_CLASSIFIER if rebalance is None else rebalance
    return VGDataset(
        split=paths.split,
        img_dir=paths.img_dir,
        roidb_file=paths.roidb_file,
        dict_file=paths.dict_file,
        image_file=paths.image_file,
        filter_empty_rels=cfg.MODEL.RELATION_ON,
        filter_non_overlap=is_train_split and (not head.USE_GT_BOX) and cfg.MODEL.RELATION_ON
        and head.REQUIRE_BOX_OVERLAP,
        filter_duplicate_rels=cfg.DATASETS.FILTER_DUPLICATE_RELS,
        num_val_im=cfg.DATASETS.NUM_VAL_IM,
        rebalance=rebalance_spec(cfg, paths.dict_file) if is_train_split and rebalanced else None,
        transforms=build_transforms(cfg, is_train=mode == "train" if augment is None else augment)
        if with_transforms else None,
    )


def _rank_and_world_size(is_distributed: bool) -> tuple[int, int]:
    if is_distributed and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _per_rank_batch(total: int, world_size: int, key: str) -> int:
    if total % world_size:
        raise ValueError(f"{key} ({total}) must be divisible by the number of processes ({world_size})")
    return total // world_size


def make_data_loader(cfg, mode: str = "train", is_distributed: bool = False, start_iter: int = 0,
                     dataset: VGDataset | None = None) -> torch.utils.data.DataLoader:
    """Batches ``(ImageList, targets, indices)`` for ``mode`` (see ``rebalance_hca.data`` docs).

    Train: SOLVER.MAX_ITER - start_iter batches of SOLVER.IMS_PER_BATCH / world_size images.
    Val/test: one pass in order, TEST.IMS_PER_BATCH / world_size images, sharded across ranks.

    Loading never touches the global generators: ``loader.dataset`` is a ``SeededDataset`` over the
    VGDataset (whose attributes it passes through) that computes each sample with seeds from (SEED, epoch,
    index), and the loader draws its workers' base seed from its own generator, seeded from (SEED, rank,
    mode). Batches are therefore the same for any DATALOADER.NUM_WORKERS and after a resume.
    """
    dataset = dataset if dataset is not None else build_dataset(cfg, mode)
    rank, world_size = _rank_and_world_size(is_distributed)
    if mode == "train":
        batch_sampler = IterationBatchSampler(
            aspect_ratio_groups(dataset.image_aspect_ratios()),
            _per_rank_batch(cfg.SOLVER.IMS_PER_BATCH, world_size, "SOLVER.IMS_PER_BATCH"),
            num_iterations=cfg.SOLVER.MAX_ITER, start_iter=start_iter, seed=cfg.SEED,
            rank=rank, world_size=world_size, group_by_aspect=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        )
    else:
        batch_sampler = InferenceBatchSampler(
            len(dataset), _per_rank_batch(cfg.TEST.IMS_PER_BATCH, world_size, "TEST.IMS_PER_BATCH"),
            rank=rank, world_size=world_size, seed=cfg.SEED,
        )
    return torch.utils.data.DataLoader(
        SeededDataset(dataset),
        batch_sampler=batch_sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=BatchCollator(cfg.DATALOADER.SIZE_DIVISIBILITY),
        generator=torch.Generator().manual_seed(derived_seed(cfg.SEED, "loader", rank, MODES.index(mode))),
        persistent_workers=False,
    )


def get_dataset_statistics(cfg) -> FrequencyStatistics:
    """Frequency statistics of the train split (SPEC §1.7), cached in OUTPUT_DIR as SGB does
    (``<train dataset name>_statistics.cache``), recomputed when the source files change."""
    name = dataset_name(cfg, "train")
    paths = DatasetCatalog.get(name, cfg.DATASETS.DATA_DIR)
    cache_file = os.path.join(cfg.OUTPUT_DIR, f"{name}_statistics.cache")
    return load_or_compute_statistics(paths.roidb_file, paths.dict_file, cfg.DATASETS.NUM_VAL_IM, cache_file)


def get_glove_embeddings(cfg, names) -> torch.Tensor:
    """GloVe vectors (len(names), MODEL.ROI_RELATION_HEAD.EMBED_DIM) for class or predicate names from
    GLOVE_DIR (SPEC §1.6)."""
    return embedding_for_names(names, cfg.GLOVE_DIR, cfg.MODEL.ROI_RELATION_HEAD.EMBED_DIM)

"""Scene-graph inference over a split, its evaluation, and the files a test run writes
(docs/reference.md#sgb-evaluation-protocol).

Every rank predicts its share of the split, moves each prediction to the original image frame (and, in
PredCls / SGCls, to the evaluation ground truth's object indices), reduces it to the compact form the
metrics need (``rebalance_hca.evaluation.compact_prediction``, a few KB per image) and sends it to rank 0.
A test pass streams: rank 0 writes what it receives to the predictions file as it comes
(``predict_split_to_file``) and evaluates the file a chunk of images at a time (``evaluate_split_file``), so
no process holds a split's predictions (docs/evaluation.md#memory-at-vg-scale). Validation and the
confusion-matrix pass keep them on rank 0 (``predict_split``).
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data import build_dataset
from ..evaluation import SGB_PROTOCOL, EvaluationProtocol, compute_zeroshot_triplets, load_zeroshot_triplets
from ..evaluation.predictions_io import PredictionsWriter, iter_predictions, read_predictions_header
from ..modeling.weights import unwrap_model
from ..utils.comm import all_gather, gather_to_main, is_main_process
from ..utils.seed import derived_seed, seeded_global_generators
from .batch_invariance import predict_batch
from .detector_inference import rescale_boxes
from .trainer import move_batch_to_device

logger = logging.getLogger(__name__)

MAX_K = 100
GATHER_BATCHES = 32
"""``predict_split_to_file``: batches each rank predicts between two sends to rank 0."""


def groundtruth_for_evaluation(dataset, index: int) -> dict:
    """SGB's evaluation GT of one image: original-frame boxes, labels and the relation list (m, 3).

    The train split's random duplicate filtering is seeded by the image index, so every call (and process)
    sees the same relations; the caller's random streams are left alone.
    """
    with seeded_global_generators(derived_seed(0, "evaluation groundtruth", index)):
        target = dataset.get_groundtruth(index, evaluation=True)
    return {"boxes": target["boxes"], "labels": target["labels"], "relations": target["relation_tuple"]}


def model_object_indices(groundtruth_boxes: torch.Tensor) -> torch.Tensor:
    """Indices of the evaluation GT boxes the model saw: training-style targets drop boxes that are empty
    after clipping (docs/reference.md#vg150-ground-truth), evaluation ones keep them. (n, 4) -> (n',) int64."""
    boxes = torch.as_tensor(groundtruth_boxes)
    return torch.nonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).squeeze(1)


def to_evaluation_frame(prediction: Mapping[str, torch.Tensor], image_size: tuple[int, int], info: Mapping[str, int],
                        groundtruth: Mapping[str, Any] | None, mode: str) -> dict[str, np.ndarray]:
    """A model prediction (input frame) as a full prediction for the evaluator: boxes in the original
    (info["width"], info["height"]) frame and, with GT boxes (PredCls / SGCls), object indices of
    ``groundtruth`` (objects the model did not see get label 0, score 0 and their GT box)."""
    boxes = rescale_boxes(prediction["boxes"].float().cpu(), image_size, info["width"], info["height"])
    labels, scores = prediction["labels"].cpu(), prediction["scores"].float().cpu()
    pairs = prediction["rel_pair_idxs"].cpu()
    if mode != "sgdet":
        seen = model_object_indices(groundtruth["boxes"])
        gt_boxes = torch.as_tensor(groundtruth["boxes"], dtype=torch.float32)
        if len(seen) != len(gt_boxes):
            full_labels = torch.zeros(len(gt_boxes), dtype=labels.dtype)
            full_scores = torch.zeros(len(gt_boxes), dtype=scores.dtype)
            full_labels[seen], full_scores[seen] = labels, scores
            boxes, labels, scores, pairs = gt_boxes, full_labels, full_scores, seen[pairs]
    return {"boxes": boxes.numpy(), "labels": labels.numpy(), "scores": scores.numpy(),
            "rel_pair_idxs": pairs.numpy(), "rel_scores": prediction["rel_scores"].float().cpu().numpy()}


def iter_split_predictions(model: nn.Module, data_loader, device: torch.device, amp_dtype: torch.dtype | None,
                           mode: str, num_predicates: int, description: str = "relation inference",
                           protocol: EvaluationProtocol = SGB_PROTOCOL,
                           batch_invariant: bool = True) -> Iterator[list[tuple[int, dict]]]:
    """Per batch of this rank's share of the split, (dataset index, compact prediction) of each image, in
    ``protocol``'s compact form (the Open Images one adds its candidates). The model is put in eval mode;
    iterate under ``torch.no_grad()``. batch_invariant (TEST.BATCH_INVARIANT): the model sees one image at a
    time (``predict_batch``), so the predictions do not depend on the loader's batch size or the number of
    processes."""
    model = unwrap_model(model).eval()
    dataset = data_loader.dataset
    size_divisible = data_loader.collate_fn.size_divisible
    for images, targets, indices in tqdm(data_loader, desc=description, disable=not is_main_process(),
                                         dynamic_ncols=True):
        images, targets = move_batch_to_device(images, targets, device)
        with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            predictions = predict_batch(model, images, targets, batch_invariant, size_divisible)
        batch = []
        for index, prediction, size in zip(indices, predictions, images.image_sizes):
            groundtruth = groundtruth_for_evaluation(dataset, int(index))
            full = to_evaluation_frame(prediction, size, dataset.get_img_info(int(index)), groundtruth, mode)
            batch.append((int(index), protocol.compact(full, groundtruth, mode, num_predicates, MAX_K,
                                                       where=f"prediction of image {int(index)}")))
        yield batch


@torch.no_grad()
def predict_split(model: nn.Module, data_loader, device: torch.device, amp_dtype: torch.dtype | None,
                  mode: str, num_predicates: int, description: str = "relation inference",
                  protocol: EvaluationProtocol = SGB_PROTOCOL, batch_invariant: bool = True) -> dict[int, dict] | None:
    """Compact predictions of every image of ``data_loader.dataset`` keyed by dataset index, on rank 0
    (None on the other ranks); see ``iter_split_predictions``. The whole split is held on rank 0:
    ``predict_split_to_file`` is the way for a test split."""
    mine = {index: prediction for batch in iter_split_predictions(model, data_loader, device, amp_dtype, mode,
                                                                  num_predicates, description, protocol,
                                                                  batch_invariant)
            for index, prediction in batch}
    gathered = gather_to_main(mine)
    if gathered is None:
        return None
    merged: dict[int, dict] = {}
    for part in gathered:
        merged.update(part)
    return merged


@torch.no_grad()
def predict_split_to_file(model: nn.Module, data_loader, device: torch.device, amp_dtype: torch.dtype | None,
                          mode: str, num_predicates: int, path: str, metadata: Mapping[str, Any],
                          description: str = "relation inference", protocol: EvaluationProtocol = SGB_PROTOCOL,
                          batch_invariant: bool = True) -> None:
    """Predict every image of ``data_loader.dataset`` and write the predictions file ``path`` (on rank 0),
    never holding the split's predictions: every GATHER_BATCHES batches the ranks send their compact
    predictions to rank 0, which writes them to the file in dataset-index order (``PredictionsWriter``,
    a chunk at a time); with the test loader's sampler (each rank takes every world_size-th image in
    order) a round's images follow the previous round's, so nothing waits long. A collective: every rank
    calls it. batch_invariant: as in ``iter_split_predictions``."""
    batches = iter_split_predictions(model, data_loader, device, amp_dtype, mode, num_predicates, description,
                                     protocol, batch_invariant)
    num_rounds = -(-max(all_gather(len(data_loader))) // GATHER_BATCHES)
    writer = PredictionsWriter(path, mode, num_predicates, MAX_K, metadata) if is_main_process() else None
    with writer or contextlib.nullcontext():
        waiting: dict[int, dict] = {}   # rank 0: received, not yet written (an earlier index is missing)
        next_index = 0
        for _ in range(num_rounds):
            mine = [item for batch in itertools.islice(batches, GATHER_BATCHES) for item in batch]
            gathered = gather_to_main(mine)
            if gathered is None:
                continue
            waiting.update(item for part in gathered for item in part)
            while next_index in waiting:
                writer.add(next_index, waiting.pop(next_index))
                next_index += 1
        if writer is not None and (waiting or next_index != len(data_loader.dataset)):
            raise ValueError(f"the predictions of the split lack image(s) from index {next_index} on "
                             f"({len(data_loader.dataset)} images)")


def train_split_statistics(cfg, split_triplets: np.ndarray, split: str, num_predicates: int,
                           zeroshot_file: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(zero-shot triplets (T, 3), train predicate counts (P,)) from ``cfg``'s train split without stage-2
    rebalancing: the split's triplets absent from training (or ``zeroshot_file``, e.g. SGB's
    ``zeroshot_triplet.pytorch``), and the counts that define head/body/tail."""
    train_triplets = build_dataset(cfg, "train", with_transforms=False, rebalance=False).relation_triplets()
    if zeroshot_file:
        zeroshot = load_zeroshot_triplets(zeroshot_file)
    else:
        zeroshot = compute_zeroshot_triplets(train_triplets, split_triplets if split != "train"
                                             else np.zeros((0, 3), dtype=np.int64))
    return zeroshot, np.bincount(train_triplets[:, 2], minlength=num_predicates)


def train_split_inputs(cfg, protocol: EvaluationProtocol, dataset, split: str, num_predicates: int,
                       zeroshot_file: str | None = None) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
    """(zero-shot triplets, train predicate counts, {"num_zeroshot_triplets": T}) for a protocol that
    evaluates with the train split (``train_split_statistics`` of ``dataset``'s triplets); (None, None, {})
    for one that does not."""
    if not protocol.uses_train_split:
        return None, None, {}
    zeroshot, predicate_counts = train_split_statistics(cfg, dataset.relation_triplets(), split, num_predicates,
                                                        zeroshot_file)
    return zeroshot, predicate_counts, {"num_zeroshot_triplets": int(len(zeroshot))}


def evaluate_split(dataset, predictions: Mapping[int, dict], mode: str, zeroshot: np.ndarray | None,
                   predicate_counts: np.ndarray | None, iou_threshold: float = 0.5,
                   with_detection: bool = True, protocol: EvaluationProtocol = SGB_PROTOCOL) -> dict:
    """``protocol``'s evaluation of compact predictions keyed by dataset index (SGB's by default; the Open
    Images protocol uses neither ``zeroshot`` nor ``predicate_counts``)."""
    missing = sorted(set(range(len(dataset))) - set(predictions))
    if missing:
        raise ValueError(f"predictions lack {len(missing)} image(s) of the split, e.g. indices {missing[:5]}")
    image_ids = sorted(predictions)
    return _evaluate_images(dataset, image_ids, (predictions[index] for index in image_ids), mode, zeroshot,
                            predicate_counts, iou_threshold, with_detection, protocol)


def evaluate_split_file(dataset, path: str, mode: str, zeroshot: np.ndarray | None,
                        predicate_counts: np.ndarray | None, iou_threshold: float = 0.5,
                        with_detection: bool = True,
                        protocol: EvaluationProtocol = SGB_PROTOCOL, whole_split: bool = True) -> dict:
    """``evaluate_split`` of the predictions file ``path``, read and evaluated one chunk of images at a time.
    With ``whole_split`` the file must hold one prediction per image of ``dataset`` in index order (as
    ``predict_split_to_file`` writes it); without, the images it holds (dataset indices, in file order)."""
    image_ids = read_predictions_header(path)["image_ids"]
    if whole_split and not np.array_equal(image_ids, np.arange(len(dataset))):
        raise ValueError(f"{path}: holds {len(image_ids)} predictions, not one per image of the {len(dataset)}-image "
                         f"split in index order")
    if len(image_ids) and (image_ids.min() < 0 or image_ids.max() >= len(dataset)):
        raise ValueError(f"{path}: image ids up to {int(image_ids.max())}, the split has {len(dataset)} images")
    return _evaluate_images(dataset, image_ids.tolist(), (prediction for _, prediction in iter_predictions(path)),
                            mode, zeroshot, predicate_counts, iou_threshold, with_detection, protocol)


def _evaluate_images(dataset, image_ids: list[int], predictions: Iterable[dict], mode: str,
                     zeroshot: np.ndarray | None, predicate_counts: np.ndarray | None, iou_threshold: float,
                     with_detection: bool, protocol: EvaluationProtocol) -> dict:
    """Evaluate ``predictions`` of the images ``image_ids`` (same order) against their ground truth, image by
    image."""
    groundtruths = (groundtruth_for_evaluation(dataset, index) for index in image_ids)
    return protocol.evaluate(groundtruths, predictions, mode, dataset.ind_to_predicates,
                             class_names=dataset.ind_to_classes, image_ids=image_ids, zeroshot_triplets=zeroshot,
                             predicate_counts=predicate_counts, iou_threshold=iou_threshold,
                             with_detection=with_detection)


def usable_cached_predictions(path: str, expected_metadata: Mapping[str, Any]) -> bool:
    """Whether ``path`` exists, is readable throughout (read once, a chunk at a time) and was written for
    exactly ``expected_metadata`` (same checkpoint file, split, mode, predictor, ...); the reason is logged
    when not."""
    if not os.path.isfile(path):
        return False
    try:
        saved = read_predictions_header(path)["metadata"]
        stale = {key: (saved.get(key), value) for key, value in expected_metadata.items()
                 if saved.get(key) != value}
        if stale:
            logger.info("Not reusing %s: written for %s", path,
                        ", ".join(f"{key}={old!r} (now {new!r})" for key, (old, new) in stale.items()))
            return False
        for _ in iter_predictions(path):
            pass
    except ValueError as error:
        logger.warning("Not reusing %s: %s", path, error)
        return False
    logger.info("Reusing the predictions in %s (TEST.ALLOW_LOAD_FROM_CACHE)", path)
    return True

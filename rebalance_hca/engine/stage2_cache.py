"""Stage 2 over cached features (docs/training.md#stage-2-over-cached-features).

Stage 2 trains only the clean classifier; everything before it is frozen. For PredCls / SGCls and a
predictor that exposes its classifier inputs (``RelationPredictor.exposes_classifier_inputs``), stage 2
takes, image by image, what the frozen part gives the classifier (``SceneGraphModel.frozen_classifier_inputs``:
the object logits and the classifier inputs of every pair its sampler can draw, N² rows) and trains the
classifier on the sampled rows. ``Stage2InputSource`` computes those outputs, and with a
``ClassifierInputCache`` keeps them on disk.

The same entries serve every pass that runs the same frozen part over the same image views
(``frozen_input_source``): the confusion-matrix pass of the stage-1 model over the train split fills what
stage 2 then reads, stage 2's validation passes read what the first one wrote, and a test pass reads what
an earlier test pass of a model with the same frozen part (stage 1's final test) wrote. The key leaves out
the classifier heads (``RelationPredictor.classifier_state_prefixes``) and the config keys that reach only
them, so that a stage-1 model and its stage-2 model share their entries; an eval pass over the entries
predicts exactly what the test-time forward of each image alone predicts (``predictions_from_frozen``).


* an entry is one image *view*, addressed by a digest of exactly what the frozen part reads (the
  transformed image tensor, its boxes and labels), so a flipped or resized view is its own entry and a hit
  returns the bytes a recomputation would give: cached and uncached stage 2 train bit-identical weights;
* a split's folder holds ``cache_key.json`` (format, frozen weights digest, config digest, split); a folder built
  for another key is refused with the reason in one line, emptied and rebuilt;
* entries are written atomically and carry their length and CRC-32: a truncated or corrupt entry is
  detected on reading, logged and recomputed. So they are written without an fsync (``atomic_write``'s
  ``durable``): an entry a power loss tears is detected in the same way.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import struct
import zlib
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..config.digest import config_digest
from ..data.build import dataset_name
from ..data.collate import to_image_list
from ..modeling.relation_head.relation_head import FrozenImageOutputs
from ..modeling.weights import unwrap_model
from ..utils.atomic import atomic_write, write_cache
from ..utils.comm import is_main_process, synchronize

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2
CACHE_FOLDER = "stage2_feature_cache"
KEY_FILE = "cache_key.json"
ENTRY_SUFFIX = ".bin"
MAGIC = b"RBHCA-STAGE2-INPUTS\n"
HEADER_LENGTH = struct.Struct("<Q")
FROZEN_PART_KEYS = ("MODEL", "INPUT", "DATASETS", "DTYPE", "DATALOADER.SIZE_DIVISIBILITY",
                    "TEST.RELATION.PAIRS_PER_CHUNK")
"""Config entries that can change what the frozen part computes (the config digest covers them)."""
CLASSIFIER_ONLY_KEYS = ("MODEL.WEIGHT", "MODEL.PRETRAINED_MODEL_CKPT", "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX",
                        "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER",
                        "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "MODEL.ROI_RELATION_HEAD.TRANSFER_MATRIX",
                        "MODEL.ROI_RELATION_HEAD.FREQUENCY_BIAS_DROPOUT", "MODEL.ROI_RELATION_HEAD.LOSS",
                        "MODEL.ROI_RELATION_HEAD.REBALANCE")
"""Keys inside FROZEN_PART_KEYS that reach only the classifier heads, the loss, the test-time transfer or
the choice of stage 2's images (the weights themselves are keyed by their values): changing them keeps the
cache, so that the stage-1 model (the confusion-matrix pass, its test) and its stage-2 model share it."""
JITTER_KEYS = ("INPUT.BRIGHTNESS", "INPUT.CONTRAST", "INPUT.SATURATION", "INPUT.HUE")


class DamagedEntry(ValueError):
    """A cache entry that cannot be trusted (truncated, corrupt, or of another cache key)."""


def frozen_weights_digest(model: nn.Module) -> str:
    """sha256 (hex) of every state-dict entry of the SceneGraphModel ``model`` but its relation predictor's
    classifier heads (``RelationPredictor.classifier_state_prefixes``: stage 2's clean classifier, the general
    one it replaces): names, dtypes, shapes and values of what the frozen part computes with."""
    scene = unwrap_model(model)
    heads = tuple(f"relation_head.predictor.{prefix}" for prefix in scene.relation_head.predictor.classifier_state_prefixes)
    digest = hashlib.sha256()
    for name, value in sorted(scene.state_dict().items()):
        if name.startswith(heads):
            continue
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name} {flat.dtype} {tuple(value.shape)}\n".encode())
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


def stage2_cache_key(cfg, model: nn.Module, split: str) -> dict[str, Any]:
    """What a cache folder is valid for: format, frozen weights, config digest, split ("train" | "val" |
    "test", named by its dataset)."""
    return {"format": CACHE_FORMAT, "frozen_weights": frozen_weights_digest(model),
            "config_digest": config_digest(cfg, FROZEN_PART_KEYS, CLASSIFIER_ONLY_KEYS),
            "split": dataset_name(cfg, split)}


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def view_digest(image: Tensor, target: dict[str, Tensor]) -> str:
    """Digest (sha256, hex) of what the frozen part reads of one image view: the image tensor (3, h, w) and
    the target's boxes (N, 4) and labels (N,), values, dtypes and shapes. (sha256 rather than blake2b: 2.5x
    faster where the CPU has SHA instructions, 0.5 ms for a 160 x 224 image.)"""
    digest = hashlib.sha256()
    for tensor in (image, target["boxes"], target["labels"]):
        flat = tensor.detach().cpu().contiguous()
        digest.update(f"{flat.dtype} {tuple(flat.shape)}\n".encode())
        digest.update(memoryview(flat.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def entry_pieces(tensors: tuple[Tensor, ...], cache_key: str) -> list[bytes | memoryview]:
    """An entry as the buffers to write one after the other, the tensors' bytes not copied: MAGIC, header
    length, JSON header (cache key, dtypes and shapes, payload length, CRC-32), payload (the tensors)."""
    payload = [memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
               for tensor in tensors]
    crc = 0
    for piece in payload:
        crc = zlib.crc32(piece, crc)
    header = json.dumps({"key": cache_key, "tensors": [[str(t.dtype).removeprefix("torch."), list(t.shape)]
                                                       for t in tensors],
                         "payload_bytes": sum(piece.nbytes for piece in payload), "crc32": crc}).encode()
    return [MAGIC, HEADER_LENGTH.pack(len(header)), header, *payload]


def encode_entry(tensors: tuple[Tensor, ...], cache_key: str) -> bytes:
    """The ``entry_pieces`` of ``tensors`` as one blob."""
    return b"".join(entry_pieces(tensors, cache_key))


def decode_entry(data: bytearray, cache_key: str) -> tuple[Tensor, ...]:
    """The tensors of an ``encode_entry`` blob; DamagedEntry saying what is wrong."""
    start = len(MAGIC) + HEADER_LENGTH.size
    if len(data) < start or bytes(data[:len(MAGIC)]) != MAGIC:
        raise DamagedEntry(f"no entry header ({len(data)} bytes)")
    (header_length,) = HEADER_LENGTH.unpack_from(data, len(MAGIC))
    try:
        header = json.loads(bytes(data[start:start + header_length]))
    except ValueError as error:
        raise DamagedEntry(f"unreadable header ({error})") from error
    payload_start = start + header_length
    expected = payload_start + header["payload_bytes"]
    if len(data) != expected:
        raise DamagedEntry(f"{len(data)} bytes where the header says {expected}")
    payload = memoryview(data)[payload_start:]
    if zlib.crc32(payload) != header["crc32"]:
        raise DamagedEntry("CRC-32 mismatch")
    if header["key"] != cache_key:
        raise DamagedEntry("written for another cache key")
    tensors, offset = [], payload_start
    for dtype_name, shape in header["tensors"]:
        dtype, count = getattr(torch, dtype_name), math.prod(shape)
        if count == 0:
            tensors.append(torch.empty(shape, dtype=dtype))
            continue
        tensors.append(torch.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape))
        offset += count * tensors[-1].element_size()
    return tuple(tensors)


class ClassifierInputCache:
    """The entries of one cache ``key`` in ``folder`` (``<folder>/<2 hex>/<view digest>.bin``)."""

    def __init__(self, folder: str, key: dict[str, Any]) -> None:
        self.folder = folder
        self.key = key
        self.key_digest = key_digest(key)

    def open(self) -> None:
        """Make the folder serve ``key`` (main process; the others wait): a folder built for another key is
        refused with the reason (one line), its entries removed, and the new key written."""
        if is_main_process():
            key_path = os.path.join(self.folder, KEY_FILE)
            stale = self._stale_reason(key_path)
            if stale:
                logger.warning("Refusing the stage-2 feature cache in %s: %s; rebuilding it", self.folder, stale)
                for path in self._entry_files():
                    os.remove(path)
            if stale or not os.path.isfile(key_path):
                with atomic_write(key_path, binary=False) as stream:
                    json.dump(self.key, stream, indent=1, sort_keys=True)
        synchronize()

    def _entry_files(self) -> list[str]:
        return glob.glob(os.path.join(self.folder, "??", f"*{ENTRY_SUFFIX}"))

    def _stale_reason(self, key_path: str) -> str:
        """Why the folder's entries do not serve ``key`` ("" when they do or when there are none)."""
        if not os.path.isfile(key_path):
            return f"its entries have no {KEY_FILE}" if self._entry_files() else ""
        try:
            with open(key_path, encoding="utf-8") as stream:
                saved = json.load(stream)
        except (OSError, ValueError) as error:
            return f"{KEY_FILE} is unreadable ({error})"
        differences = [f"{name} {str(saved.get(name))[:16]} (now {str(value)[:16]})"
                       for name, value in self.key.items() if saved.get(name) != value]
        return f"built for {', '.join(differences)}" if differences else ""

    def entry_path(self, digest: str) -> str:
        return os.path.join(self.folder, digest[:2], f"{digest}{ENTRY_SUFFIX}")

    def load(self, digest: str) -> tuple[Tensor, ...] | None:
        """The entry ``digest``, or None when it is absent or damaged (logged; it is then recomputed)."""
        path = self.entry_path(digest)
        try:
            size = os.path.getsize(path)
        except OSError:
            return None
        data = bytearray(size)
        with open(path, "rb") as stream:
            read = stream.readinto(data)
        try:
            return decode_entry(data[:read], self.key_digest)
        except DamagedEntry as error:
            logger.warning("Stage-2 feature cache entry %s is damaged (%s); recomputing it", path, error)
            return None

    def store(self, digest: str, tensors: tuple[Tensor, ...]) -> None:
        """Write the entry ``digest`` atomically (a folder that cannot be written is warned about once)."""
        pieces = entry_pieces(tensors, self.key_digest)
        write_cache(self.entry_path(digest), lambda stream: stream.writelines(pieces), durable=False)


class Stage2InputSource:
    """A ``ClassifierInputSource`` for ``model`` (an unwrapped SceneGraphModel): (image (3, h, w), target)
    -> its ``frozen_classifier_inputs`` (FrozenImageOutputs; the image padded alone to ``size_divisible``),
    read from ``cache`` when it holds the view, else computed (and stored). Counts ``hits`` and ``misses``."""

    def __init__(self, model: nn.Module, size_divisible: int, cache: ClassifierInputCache | None = None) -> None:
        self.model = model
        self.size_divisible = size_divisible
        self.cache = cache
        self.hits = 0
        self.misses = 0

    def __call__(self, image: Tensor, target: dict[str, Tensor]) -> FrozenImageOutputs:
        digest = view_digest(image, target) if self.cache is not None else ""
        if self.cache is not None:
            cached = self.cache.load(digest)
            if cached is not None:
                self.hits += 1
                return FrozenImageOutputs.from_tensors(tuple(tensor.to(image.device) for tensor in cached))
        self.misses += 1
        outputs = self.model.frozen_classifier_inputs(to_image_list([image], self.size_divisible), target)
        if self.cache is not None:
            self.cache.store(digest, outputs.tensors())
        return outputs


def stage2_cache_folder(cfg, split: str, weights: str) -> str:
    """The cache folder of ``split``: STAGE2.FEATURE_CACHE_DIR, else ``stage2_feature_cache`` beside the
    frozen model's weights file ``weights`` (OUTPUT_DIR without one), then the split's dataset name. Beside
    the weights, the passes that run one frozen model find one folder: the stage-1 run's confusion-matrix
    pass and final test (MODEL.WEIGHT or its checkpoint) and stage 2 (MODEL.PRETRAINED_MODEL_CKPT)."""
    base = cfg.STAGE2.FEATURE_CACHE_DIR or os.path.join(os.path.dirname(weights) if weights else cfg.OUTPUT_DIR,
                                                        CACHE_FOLDER)
    return os.path.join(base, dataset_name(cfg, split))


def frozen_input_source(cfg, model: nn.Module, split: str, weights: str) -> Stage2InputSource | None:
    """The per-image source of the frozen part's outputs for a pass of ``model`` (loaded; its frozen part
    fixed for the pass) over ``split`` ("train" | "val" | "test") without augmentation, cached per
    STAGE2.FEATURE_CACHE in ``stage2_cache_folder(cfg, split, weights)``; None (the pass then runs the usual
    forward) for SGDet, a predictor that does not expose its classifier inputs, or the cache off."""
    scene = unwrap_model(model)
    if not (cfg.STAGE2.FEATURE_CACHE and scene.classifier_inputs_per_image):
        return None
    cache = ClassifierInputCache(stage2_cache_folder(cfg, split, weights), stage2_cache_key(cfg, scene, split))
    cache.open()
    logger.info("The %s pass reads and fills the feature cache in %s (STAGE2.FEATURE_CACHE)", split, cache.folder)
    return Stage2InputSource(scene, cfg.DATALOADER.SIZE_DIVISIBILITY, cache)


@contextmanager
def frozen_inputs(model: nn.Module, source: Stage2InputSource | None) -> Iterator[None]:
    """Within the block, ``model`` (a SceneGraphModel, possibly wrapped) takes its frozen part's outputs from
    ``source`` (None: runs its usual forward); then its own source (stage 2's training one) is restored."""
    scene = unwrap_model(model)
    saved, scene.stage2_inputs = scene.stage2_inputs, source
    try:
        yield
    finally:
        scene.stage2_inputs = saved


def setup_stage2_inputs(cfg, model: nn.Module) -> Stage2InputSource | None:
    """Give the stage-2 ``model`` (loaded from MODEL.PRETRAINED_MODEL_CKPT, frozen) its per-image classifier
    inputs, cached per STAGE2.FEATURE_CACHE (over the train split: the confusion-matrix pass of the same
    stage-1 model fills the unflipped views); None (stage 2 then runs the frozen part on every batch, as
    stage 1 does) for SGDet or a predictor that does not expose its inputs."""
    scene = unwrap_model(model)
    if not scene.classifier_inputs_per_image:
        logger.info("Stage 2 runs the frozen part on every batch (%s in %s takes no per-image classifier inputs; "
                    "STAGE2.FEATURE_CACHE does not apply)", cfg.MODEL.ROI_RELATION_HEAD.PREDICTOR, scene.mode)
        scene.stage2_inputs = None
        return None
    jitter = [key for key in JITTER_KEYS if getattr(cfg.INPUT, key.split(".")[1]) > 0]
    source = None
    if not cfg.STAGE2.FEATURE_CACHE:
        logger.info("Stage 2 computes the frozen part image by image at every iteration (STAGE2.FEATURE_CACHE False)")
    elif jitter:
        logger.warning("STAGE2.FEATURE_CACHE is not used in training: colour jitter (%s) makes every image view "
                       "new, so no entry would ever be read again", ", ".join(jitter))
    else:
        source = frozen_input_source(cfg, scene, "train", cfg.MODEL.PRETRAINED_MODEL_CKPT)
    scene.stage2_inputs = source or Stage2InputSource(scene, cfg.DATALOADER.SIZE_DIVISIBILITY)
    return scene.stage2_inputs

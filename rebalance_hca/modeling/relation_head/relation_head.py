"""The relation head: pairs -> box and union features -> context -> predictor -> loss | ranked predictions.

Training (docs/reference.md#relation-head-data-flow): pairs are sampled per image; the loss dict is
    {"loss_rel": relation loss over all sampled pairs of the batch,
     "loss_refine_obj": CE(object_logits, object labels), 0 when the logits need no gradient (PredCls,
                        stage 2),
     and the predictor's own extra losses under its key names (``PredictorOutput.losses``)}.
Testing (docs/reference.md#test-time-post-processing): every ordered pair of every image; the union features and the predictor's
``eval_logits`` run over at most ``pairs_per_chunk`` pairs at a time, so SGDet's 80 x 79 pairs per image
stay in bounded memory
(about pairs_per_chunk x (L + 1) x F x 7 x 7 floats of pooled union features, L FPN levels: 170 MB for
512 pairs with F = 256 and four levels), and each image becomes one prediction dict (``postprocess``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...utils.state_dict import replace_substate
from .box_geometry import encode_box_info
from .context import ContextInputs, ObjectContext
from .features import BoxFeatureExtractor, UnionFeatureExtractor
from .object_labels import check_mode
from .postprocess import relation_predictions
from .predictors import RelationPredictor
from .sampling import RelationPairSampler, all_ordered_pairs, pair_grid_rows


@dataclass(frozen=True)
class FrozenImageOutputs:
    """What the frozen part gives the classifier head for one image of N objects
    (``RelationHead.frozen_classifier_inputs``): object_logits (N, C), the object context's logits;
    classifier_inputs, the predictor's ``classifier_inputs`` of every pair of ``pair_grid`` (N² rows each)."""

    object_logits: Tensor
    classifier_inputs: tuple[Tensor, ...]

    def tensors(self) -> tuple[Tensor, ...]:
        """(object_logits, *classifier_inputs), the form a cache stores."""
        return (self.object_logits, *self.classifier_inputs)

    @classmethod
    def from_tensors(cls, tensors: tuple[Tensor, ...]) -> "FrozenImageOutputs":
        """The inverse of ``tensors``."""
        return cls(tensors[0], tuple(tensors[1:]))


@dataclass
class ImageObjects:
    """The objects of one image given to the relation head, boxes in the detector's input frame.

    boxes: (N, 4) xyxy. labels: (N,) int64 GT labels (PredCls / SGCls) or, in SGDet training, the label of the
    GT matched to each detection (0 = none); None at SGDet test time. detector_logits: (N, C) the detector's
    class logits (SGCls / SGDet). boxes_per_cls: (N, C, 4) every class's regressed box (SGDet).
    """

    boxes: Tensor
    labels: Tensor | None = None
    detector_logits: Tensor | None = None
    boxes_per_cls: Tensor | None = None


def _cat_optional(values: list[Tensor | None]) -> Tensor | None:
    return None if any(value is None for value in values) else torch.cat(values)


HEAD_LOSSES = ("loss_rel", "loss_refine_obj")
"""The loss names the head computes itself; a predictor's extra losses take other names."""


def _offsets(counts: list[int], device: torch.device) -> Tensor:
    """Start of each image's rows in the flat layout: (B,) int64."""
    return torch.tensor([0, *counts[:-1]], device=device).cumsum(0)


class RelationHead(nn.Module):
    """mode: "predcls" | "sgcls" | "sgdet". box_features / union_features: the extractors (union_features None
    when the predictor uses none). predictor: a ``RelationPredictor`` (the interface: ``predictors.registry``).
    relation_loss: (logits (R, P), labels (R,)) -> scalar. num_predicates: P, background included.
    nms_threshold: TEST.RELATION.LATER_NMS_PREDICTION_THRES. pairs_per_chunk: TEST.RELATION.PAIRS_PER_CHUNK.

    forward(features, objects [ImageObjects], image_sizes [(h, w)], targets) -> losses (training) or one
    prediction dict per image (eval). targets: the loader's per-image dicts ("boxes", "labels", "relation"
    (N, N)); needed for training.
    """

    def __init__(self, mode: str, box_features: BoxFeatureExtractor, union_features: UnionFeatureExtractor | None,
                 predictor: RelationPredictor, sampler: RelationPairSampler, relation_loss: nn.Module,
                 num_predicates: int, nms_threshold: float, pairs_per_chunk: int = 512) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.box_features = box_features
        self.union_features = union_features
        self.predictor = predictor
        self.sampler = sampler
        self.relation_loss = relation_loss
        self.nms_threshold = nms_threshold
        if pairs_per_chunk < 1:
            raise ValueError(f"TEST.RELATION.PAIRS_PER_CHUNK must be >= 1, got {pairs_per_chunk}")
        self.pairs_per_chunk = pairs_per_chunk
        self.num_predicates = num_predicates
        self.trainable_modules: set[str] | None = None

    # ------------------------------------------------------------------ stage 2 (asked of the predictor)
    def complete_stage2_state(self, stage1_state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A stage-1 state dict of this head (keys relative to it) completed by the predictor's
        ``complete_stage2_state`` for its stage-2 form."""
        return replace_substate(stage1_state, "predictor.", self.predictor.complete_stage2_state)

    def stage2_parameter_names(self) -> list[str]:
        """The parameters (names relative to this head) that stage 2 trains: the predictor's choice."""
        return [f"predictor.{name}" for name in self.predictor.stage2_parameter_names()]

    def restrict_training(self, trainable_parameters: set[str]) -> None:
        """Train only the named parameters (names relative to this head): every other parameter gets
        requires_grad False, and every module holding a frozen parameter stays in eval mode whatever
        ``train()`` asks (stage 2's frozen part runs as at test time)."""
        unknown = trainable_parameters - {name for name, _ in self.named_parameters()}
        if unknown:
            raise ValueError(f"restrict_training: no such parameters {sorted(unknown)}")
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name in trainable_parameters)
        self.trainable_modules = {
            name for name, module in self.named_modules()
            if any(True for _ in module.parameters()) and all(p.requires_grad for p in module.parameters())}
        self.train(self.training)

    def train(self, mode: bool = True) -> "RelationHead":
        """The head's own mode decides loss vs predictions; after ``restrict_training`` the frozen submodules
        stay in eval mode (dropout off, BatchNorm statistics fixed, SGDet's test-time label decoding)."""
        super().train(mode)
        if mode and self.trainable_modules is not None:
            for name, module in self.named_modules():
                if name:
                    module.training = any(name == kept or name.startswith(f"{kept}.") for kept in self.trainable_modules)
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, features: dict[str, Tensor], objects: list[ImageObjects], image_sizes: list[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None):
        if self.training:
            if targets is None:
                raise ValueError("the relation head needs targets in training")
            return self._losses(features, objects, image_sizes, targets)
        return self._predictions(features, objects, image_sizes)

    def object_context(self, features: dict[str, Tensor], objects: list[ImageObjects],
                       image_sizes: list[tuple[int, int]], relation_adjacency: list[Tensor] | None = None,
                       pairs: Tensor | None = None, union_features: Tensor | None = None) -> ObjectContext:
        """The predictor's object context of the batch: box features, box encoding, labels -> context.
        relation_adjacency: per image (N_b, N_b) (training, ``_relation_adjacency``) or None; pairs (R, 2)
        flat and their union_features (R, D): for a predictor with ``uses_pair_context``, else None."""
        boxes = [image.boxes for image in objects]
        inputs = ContextInputs(
            roi_features=self.box_features(features, boxes, image_sizes),
            box_info=torch.cat([encode_box_info(b, size) for b, size in zip(boxes, image_sizes)]),
            num_objects=[len(b) for b in boxes],
            labels=torch.cat([image.labels for image in objects]) if self.mode == "predcls" else None,
            detector_logits=None if self.mode == "predcls" else _cat_optional([o.detector_logits for o in objects]),
            boxes_per_cls=_cat_optional([o.boxes_per_cls for o in objects]) if self.mode == "sgdet" else None,
            boxes=torch.cat(boxes),
            image_sizes=[tuple(size) for size in image_sizes],
            target_labels=(torch.cat([image.labels for image in objects])
                           if self.training and self.mode != "predcls" else None),
            relation_adjacency=relation_adjacency,
            pairs=pairs,
            union_features=union_features,
        )
        return self.predictor.object_context(inputs)

    def sample_pairs(self, objects: list[ImageObjects], targets: list[dict[str, Tensor]]
                     ) -> tuple[list[Tensor], list[Tensor]]:
        """Training pairs [(R_i, 2)] and their predicate labels [(R_i,)] per image (docs/reference.md#pair-sampling)."""
        pairs, labels = [], []
        for image, target in zip(objects, targets):
            if self.mode == "sgdet":
                image_pairs, image_labels = self.sampler.detection_pairs(
                    image.boxes, image.labels, target["boxes"], target["labels"], target["relation"])
            else:
                image_pairs, image_labels = self.sampler.gt_box_pairs(target["relation"])
            pairs.append(image_pairs)
            labels.append(image_labels)
        return pairs, labels

    def _relation_adjacency(self, objects: list[ImageObjects], targets: list[dict[str, Tensor]]) -> list[Tensor]:
        """Per image (N_b, N_b) int64: 1 where objects i and j are related in either direction (SGDet: through
        the detections matched to a GT relation's boxes; ``RelationPairSampler``'s adjacency methods)."""
        if self.mode == "sgdet":
            return [self.sampler.detection_adjacency(image.boxes, image.labels, target["boxes"], target["labels"],
                                                     target["relation"]) for image, target in zip(objects, targets)]
        return [self.sampler.gt_box_adjacency(target["relation"]) for target in targets]

    def _losses(self, features, objects, image_sizes, targets) -> dict[str, Tensor]:
        pairs, pair_labels = self.sample_pairs(objects, targets)
        adjacency = self._relation_adjacency(objects, targets) if self.predictor.uses_relation_adjacency else None
        offsets = _offsets([len(image.boxes) for image in objects], pairs[0].device)
        flat_pairs = torch.cat([image_pairs + offset for image_pairs, offset in zip(pairs, offsets)])
        union = None
        if self.predictor.uses_union_features:
            union = self.union_features(features, [image.boxes for image in objects], pairs, image_sizes)
        if self.predictor.uses_pair_context:
            context = self.object_context(features, objects, image_sizes, adjacency, flat_pairs, union)
        else:
            context = self.object_context(features, objects, image_sizes, adjacency)
        flat_labels = torch.cat(pair_labels)
        output = self.predictor.training_outputs(context, flat_pairs, union, flat_labels)
        losses = {"loss_rel": self.relation_loss(output.relation_logits.float(), flat_labels)}
        object_logits = context.object_logits
        if object_logits.requires_grad:
            object_labels = torch.cat([image.labels for image in objects])
            losses["loss_refine_obj"] = F.cross_entropy(object_logits.float(), object_labels)
        else:
            losses["loss_refine_obj"] = object_logits.new_zeros(())
        clashing = sorted(set(output.losses) & set(HEAD_LOSSES))
        if clashing:
            raise ValueError(f"{type(self.predictor).__name__} returns extra losses named {clashing}, names the "
                             f"relation head uses itself ({', '.join(HEAD_LOSSES)})")
        return {**losses, **output.losses}

    # ------------------------------------------------------------------ stage 2 over the classifier inputs
    @torch.no_grad()
    def frozen_classifier_inputs(self, features: dict[str, Tensor], image: ImageObjects,
                                 image_size: tuple[int, int]) -> FrozenImageOutputs:
        """What the frozen part gives the classifier head for ONE image, whose features (one image in the
        batch dimension) and objects are given: the context's object logits and the predictor's
        ``classifier_inputs`` of every pair of ``pair_grid`` (N² rows, row s·N + o), i.e. of any pair the
        PredCls / SGCls sampler can draw and of every test pair. The test pairs (``all_ordered_pairs``) go
        through the union features and ``classifier_inputs`` in the very chunks of ``pairs_per_chunk`` pairs
        the test-time forward uses, the diagonal after them, so that their rows are bit for bit what that
        forward computes (``predictions_from_frozen``)."""
        if len(image.boxes) == 0:
            raise ValueError("stage 2 needs images with objects (the training split keeps only images with relations)")
        count, device = len(image.boxes), image.boxes.device
        context = self.object_context(features, [image], [image_size])
        test_pairs = all_ordered_pairs(count, device)
        diagonal = torch.arange(count, device=device).unsqueeze(1).expand(-1, 2) if count > 1 else test_pairs[:0]
        pieces = []
        for pairs in (test_pairs, diagonal):
            for chunk in pair_chunks([len(pairs)], self.pairs_per_chunk):
                chunk_pairs = pairs[chunk[0][1]]
                union = None
                if self.predictor.uses_union_features:
                    union = self.union_features(features, [image.boxes], [chunk_pairs], [image_size])
                pieces.append(self.predictor.classifier_inputs(context, chunk_pairs, union))
        rows = pair_grid_rows(torch.cat([test_pairs, diagonal]), count)
        inputs = []
        for parts in zip(*pieces):
            computed = torch.cat(parts)
            grid = computed.new_empty((count * count, *computed.shape[1:]))
            grid[rows] = computed
            inputs.append(grid)
        return FrozenImageOutputs(context.object_logits, tuple(inputs))

    @torch.no_grad()
    def predictions_from_frozen(self, frozen: FrozenImageOutputs, image: ImageObjects) -> dict[str, Tensor]:
        """The test-time prediction of one image (as ``_predictions`` makes it) from its
        ``frozen_classifier_inputs``: the test pairs' rows through the predictor's ``eval_classify`` in the
        chunks of the test-time forward, then ``relation_predictions``. Bit-identical to the test-time
        forward of that image alone."""
        count = len(image.boxes)
        pairs = all_ordered_pairs(count, image.boxes.device)
        rows = pair_grid_rows(pairs, count)
        logits = [self.predictor.eval_classify(*(tensor[rows[chunk[0][1]]] for tensor in frozen.classifier_inputs))
                  .float() for chunk in pair_chunks([len(pairs)], self.pairs_per_chunk)]
        image_logits = torch.cat(logits) if logits else frozen.object_logits.new_zeros(0, self.num_predicates)
        return relation_predictions(frozen.object_logits, image.boxes, image.boxes_per_cls, pairs, image_logits,
                                    self.mode, self.nms_threshold)

    def stage2_losses(self, image_inputs: list[tuple[Tensor, ...]], pairs: list[Tensor], pair_labels: list[Tensor],
                      num_objects: list[int]) -> dict[str, Tensor]:
        """Stage 2's losses from each image's classifier inputs (``FrozenImageOutputs.classifier_inputs``,
        N_i² rows), its sampled ``pairs``
        [(R_i, 2)] and their labels [(R_i,)] (``sample_pairs``): the sampled rows, in the order of the pairs,
        go through the predictor's (clean) classifier. {"loss_rel", "loss_refine_obj" (0: the objects are
        frozen)}."""
        rows = [pair_grid_rows(image_pairs, count) for image_pairs, count in zip(pairs, num_objects)]
        inputs = [torch.cat([tensors[slot][image_rows] for tensors, image_rows in zip(image_inputs, rows)])
                  for slot in range(len(image_inputs[0]))]
        logits = self.predictor.classify(*inputs)
        loss = self.relation_loss(logits.float(), torch.cat(pair_labels))
        return {"loss_rel": loss, "loss_refine_obj": loss.new_zeros(())}

    def _predictions(self, features, objects, image_sizes) -> list[dict[str, Tensor]]:
        counts = [len(image.boxes) for image in objects]
        offsets = _offsets(counts, objects[0].boxes.device).tolist()
        pairs = [all_ordered_pairs(count, image.boxes.device) for count, image in zip(counts, objects)]
        if self.predictor.uses_pair_context:
            context, logits = self._pair_context_logits(features, objects, pairs, offsets, image_sizes)
        else:
            context = self.object_context(features, objects, image_sizes)
            logits = self._chunked_logits(features, objects, pairs, offsets, context, image_sizes)
        return [relation_predictions(context.object_logits[offset:offset + len(image.boxes)], image.boxes,
                                     image.boxes_per_cls, image_pairs, image_logits, self.mode, self.nms_threshold)
                for image, image_pairs, image_logits, offset in zip(objects, pairs, logits, offsets)]

    def _union_chunks(self, features: dict[str, Tensor], objects: list[ImageObjects], pairs: list[Tensor],
                      image_sizes: list[tuple[int, int]]):
        """Yield (images, chunk_pairs, union) over chunks of at most ``pairs_per_chunk`` pairs of one or more
        consecutive images: the image indices, their pairs [(R_c, 2)] local, and the union features
        (ΣR_c, D) of those pairs (None when the predictor uses none)."""
        for chunk in pair_chunks([len(image_pairs) for image_pairs in pairs], self.pairs_per_chunk):
            images = [index for index, _ in chunk]
            chunk_pairs = [pairs[index][rows] for index, rows in chunk]
            union = None
            if self.predictor.uses_union_features:
                first, last = images[0], images[-1] + 1
                chunk_features = {name: level[first:last] for name, level in features.items()}
                union = self.union_features(chunk_features, [objects[index].boxes for index in images], chunk_pairs,
                                            [image_sizes[index] for index in images])
            yield images, chunk_pairs, union

    def _pair_context_logits(self, features: dict[str, Tensor], objects: list[ImageObjects], pairs: list[Tensor],
                             offsets: list[int], image_sizes: list[tuple[int, int]]
                             ) -> tuple[ObjectContext, list[Tensor]]:
        """For a predictor with ``uses_pair_context``: the context over every image's pairs [(R_i, 2)] (flat
        with the images' first rows ``offsets``), their union features computed in chunks, and the relation
        logits [(R_i, P)] of those pairs."""
        flat_pairs = torch.cat([image_pairs + offset for image_pairs, offset in zip(pairs, offsets)])
        union = None
        if self.predictor.uses_union_features:
            pieces = [piece for _, _, piece in self._union_chunks(features, objects, pairs, image_sizes)]
            union = torch.cat(pieces) if pieces else next(iter(features.values())).new_zeros(
                0, self.union_features.out_channels)
        context = self.object_context(features, objects, image_sizes, pairs=flat_pairs, union_features=union)
        logits = self.predictor.eval_logits(context, flat_pairs, union).float()
        return context, list(logits.split([len(image_pairs) for image_pairs in pairs]))

    def _chunked_logits(self, features: dict[str, Tensor], objects: list[ImageObjects], pairs: list[Tensor],
                        offsets: list[int], context: ObjectContext, image_sizes: list[tuple[int, int]]) -> list[Tensor]:
        """Relation logits [(R_i, P)] of every image's pairs [(R_i, 2)], the union features and classifier
        running over at most ``pairs_per_chunk`` pairs (of one or more consecutive images) at a time."""
        pieces: list[list[Tensor]] = [[] for _ in objects]
        for images, chunk_pairs, union in self._union_chunks(features, objects, pairs, image_sizes):
            flat_pairs = torch.cat([image_pairs + offsets[index] for index, image_pairs in zip(images, chunk_pairs)])
            logits = self.predictor.eval_logits(context, flat_pairs, union).float()
            for index, image_logits in zip(images, logits.split([len(p) for p in chunk_pairs])):
                pieces[index].append(image_logits)
        return [torch.cat(image_pieces) if image_pieces else context.object_logits.new_zeros(0, self.num_predicates)
                for image_pieces in pieces]


def pair_chunks(pair_counts: list[int], chunk_size: int) -> list[list[tuple[int, slice]]]:
    """Split the pairs of consecutive images into chunks of at most ``chunk_size`` pairs.

    pair_counts: R_i per image. Returns chunks, each a list of (image index, slice of that image's pairs),
    images in order and consecutive within a chunk. Images without pairs appear in no chunk.
    Example: counts [3, 5, 0, 2] with chunk_size 4 -> [[(0, 0:3), (1, 0:1)], [(1, 1:5)], [(3, 0:2)]].
    """
    chunks, current, room = [], [], chunk_size
    for index, count in enumerate(pair_counts):
        start = 0
        while start < count:
            take = min(room, count - start)
            current.append((index, slice(start, start + take)))
            start += take
            room -= take
            if room == 0:
                chunks.append(current)
                current, room = [], chunk_size
    if current:
        chunks.append(current)
    return chunks

"""Everything a dataset family produces on one dataset, reduced to one SHA-256 digest per output, so that
a test can pin VG150's and Open Images V6's outputs to those of the code before the family registry.

The outputs, for the train, val and test splits named by a config: the split index (image rows, box and
relation offsets, relations, sizes, image ids and file names), the evaluation-form and training-form
ground truth of every image (under fixed seeds), the stage-2 rebalanced train split, the train vocabulary
and predicate order, the frequency statistics, the loader batches (targets, image sizes, indices; pixel
values are left out, they depend on the JPEG codec of the machine) and, with a deterministic stand-in for
the model, the whole test pass (predictions file, report text, results JSON), the validation metric and
the re-evaluation by tools/evaluate_predictions.py. Floats are rounded (6 decimals) before hashing.

Only calls that exist unchanged before and after the registry are used, so the same code computes the
pinned digests from the earlier code:

    PYTHONPATH=<checkout> python tests/family_outputs.py    # prints {layout: {output: digest}}
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import random
import sys
import tempfile
from typing import Any

import numpy as np
import torch
from torch import nn

import rebalance_hca
from rebalance_hca.config import load_config
from rebalance_hca.data import build_dataset, get_dataset_statistics, make_data_loader
from rebalance_hca.data.build import rebalance_spec, train_vocabulary
from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg, write_synthvg_oi
from rebalance_hca.engine.relation_runs import relation_validator, test_relation_model
from rebalance_hca.evaluation import load_predictions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(rebalance_hca.__file__)))
SYNTHVG_OPTIONS = SynthVGOptions(num_images=60, seed=0)
OI_VAL_IMAGES = 10
LAYOUTS = {
    "vg150": (os.path.join("configs", "synthetic", "relation_HCA_R18_FPN.yaml"), "vg"),
    "oiv6": (os.path.join("configs", "synthetic", "relation_HCA_R18_FPN_oiv6.yaml"),
             os.path.join("openimages", "open_image_v6")),
}
CONFIG_OPTS = ["DATASETS.NUM_VAL_IM", "10", "DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "4",
               "TEST.IMS_PER_BATCH", "4", "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "True",
               "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", "True"]
# Stage 2 capped hard enough to remove relations on 60 images.
STAGE2_OPTS = ["MODEL.ROI_RELATION_HEAD.REBALANCE.TOP_K_PREDICATES", "4",
               "MODEL.ROI_RELATION_HEAD.REBALANCE.MAX_INSTANCES", "5"]
FLOAT_DECIMALS = 6
TRAIN_BATCHES = 3


def write_layout(layout: str, root: str) -> str:
    """SynthVG's 60 seed-0 scenes in ``layout`` ("vg150" or "oiv6") under ``root``; returns ``root``."""
    if layout == "vg150":
        write_synthvg(root, SYNTHVG_OPTIONS)
    else:
        write_synthvg_oi(root, SYNTHVG_OPTIONS, num_val_images=OI_VAL_IMAGES)
    return root


def layout_config(layout: str, data_dir: str, output_dir: str, *extra: str):
    """The synthetic relation config of ``layout`` on the data at ``data_dir``, in PredCls."""
    config_file, glove_folder = LAYOUTS[layout]
    return load_config(os.path.join(ROOT, config_file), [
        *CONFIG_OPTS, "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, glove_folder),
        "OUTPUT_DIR", output_dir, *extra])


class _Hasher:
    def __init__(self, output_dir: str) -> None:
        self.sha = hashlib.sha256()
        self.output_dir = output_dir

    def add(self, value: Any) -> None:
        """Feed ``value`` (nested dicts, lists, arrays, tensors, scalars, strings) in a canonical form."""
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, dict):
            self._tag("dict", len(value))
            for key in sorted(value, key=str):
                self.add(str(key))
                self.add(value[key])
        elif isinstance(value, (list, tuple)):
            self._tag("list", len(value))
            for item in value:
                self.add(item)
        elif isinstance(value, np.ndarray):
            self._tag(f"array {value.dtype.kind} {value.shape}", 0)
            if value.dtype.kind == "f":
                rounded = np.round(value.astype(np.float64), FLOAT_DECIMALS) + 0.0
                self.sha.update(np.where(np.isnan(rounded), np.inf, rounded).tobytes())
            elif value.dtype.kind in "iub":
                self.sha.update(value.astype(np.int64).tobytes())
            else:
                self.add([str(item) for item in value.ravel().tolist()])
        elif isinstance(value, (float, np.floating)):
            self.add(np.array([value], dtype=np.float64))
        elif isinstance(value, (bool, int, np.integer)):
            self._tag(f"int {int(value)}", 0)
        elif value is None:
            self._tag("none", 0)
        else:
            self._tag("str " + str(value).replace(self.output_dir, "<output>"), 0)

    def _tag(self, text: str, length: int) -> None:
        self.sha.update(f"{text}|{length}|".encode())


def _digest(output_dir: str, *values: Any) -> str:
    hasher = _Hasher(output_dir)
    for value in values:
        hasher.add(value)
    return hasher.sha.hexdigest()


def _seeded(seed: int) -> None:
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)


def _index_arrays(dataset) -> list:
    index = dataset.index
    return [len(dataset), index.image_rows, index.box_start, index.box_count, index.rel_offsets, index.relations,
            dataset.widths, dataset.heights, [dataset.get_img_info(i) for i in range(len(dataset))],
            dataset.ind_to_classes, dataset.ind_to_predicates, dataset.ind_to_attributes]


def _targets(dataset, evaluation: bool) -> list:
    targets = []
    for index in range(len(dataset)):
        _seeded(index)
        targets.append(dataset.get_groundtruth(index, evaluation=evaluation))
    return targets


def _batches(loader, limit: int | None) -> list:
    batches = []
    for number, (images, targets, indices) in enumerate(loader):
        if limit is not None and number == limit:
            break
        batches.append([list(images.image_sizes), list(images.tensors.shape), list(indices), targets])
    return batches


class DeterministicRelationModel(nn.Module):
    """A stand-in for a PredCls model: the target's boxes and labels, every ordered pair of distinct
    objects, and predicate scores from a generator seeded by the image's labels (so a prediction depends
    on its image only, not on the order of the batches)."""

    classifier_inputs_per_image = False
    stage2_inputs = None
    """As a SceneGraphModel whose predictor exposes no classifier inputs: no pass reads the feature cache."""

    def __init__(self, num_predicates: int) -> None:
        super().__init__()
        self.num_predicates = num_predicates

    def forward(self, images, targets) -> list[dict[str, torch.Tensor]]:
        predictions = []
        for target in targets:
            labels = target["labels"].cpu()
            count = len(labels)
            pairs = torch.tensor([(s, o) for s in range(count) for o in range(count) if s != o],
                                 dtype=torch.int64).reshape(-1, 2)
            seed = int((labels * torch.arange(1, count + 1)).sum()) * 1009 + count
            scores = torch.rand(len(pairs), self.num_predicates, generator=torch.Generator().manual_seed(seed))
            predictions.append({"boxes": target["boxes"].cpu(), "labels": labels,
                                "scores": torch.ones(count), "rel_pair_idxs": pairs,
                                "rel_scores": scores / scores.sum(1, keepdim=True)})
        return predictions


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"family_outputs_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _folder_contents(folder: str) -> dict:
    contents = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith((".txt", ".json")):
            with open(path, encoding="utf-8") as stream:
                contents[name] = json.load(stream) if name.endswith(".json") else stream.read()
        elif name.endswith(".npz"):
            saved = load_predictions(path)
            # the config digest and the test batching (recorded since the pin) describe the run, not its outputs
            metadata = {key: value for key, value in saved["metadata"].items()
                        if key not in ("config_digest", "batching")}
            contents[name] = {**{key: value for key, value in saved.items() if key != "metadata"},
                              "metadata": metadata}
        else:
            contents[name] = "present"
    return contents


def family_output_digests(layout: str, data_dir: str, output_dir: str) -> dict[str, str]:
    """{output name: digest} of everything listed in the module docstring, for SynthVG's ``layout`` at
    ``data_dir``; ``output_dir`` receives the statistics cache and the test run's files."""
    cfg = layout_config(layout, data_dir, output_dir)
    digests = {}
    for mode in ("train", "val", "test"):
        dataset = build_dataset(cfg, mode, with_transforms=False)
        digests[f"{mode}.index"] = _digest(output_dir, _index_arrays(dataset))
        digests[f"{mode}.evaluation_targets"] = _digest(output_dir, _targets(dataset, evaluation=True))
        digests[f"{mode}.training_targets"] = _digest(output_dir, _targets(dataset, evaluation=False))
    stage2_cfg = layout_config(layout, data_dir, output_dir, *STAGE2_OPTS)
    stage2 = build_dataset(stage2_cfg, "train", with_transforms=False, rebalance=True)
    digests["train.stage2_index"] = _digest(output_dir, _index_arrays(stage2))
    vocabulary = train_vocabulary(cfg)
    spec = rebalance_spec(stage2_cfg)
    digests["vocabulary"] = _digest(output_dir, [os.path.relpath(vocabulary.source, data_dir),
                                                 vocabulary.ind_to_classes, vocabulary.ind_to_predicates,
                                                 vocabulary.predicate_counts, list(vocabulary.predicate_order),
                                                 list(spec.predicate_order), spec.top_k, spec.max_instances])
    statistics = get_dataset_statistics(cfg)
    digests["statistics"] = _digest(output_dir, [statistics.fg_matrix, statistics.bg_matrix, statistics.pred_dist,
                                                 sorted(os.listdir(output_dir))])
    _seeded(0)
    digests["loader.train"] = _digest(output_dir, _batches(make_data_loader(cfg, "train"), TRAIN_BATCHES))
    digests["loader.test"] = _digest(output_dir, _batches(make_data_loader(cfg, "test"), None))

    model = DeterministicRelationModel(cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES)
    evaluation = test_relation_model(cfg, model, torch.device("cpu"), distributed=False, weights="")
    inference = os.path.join(output_dir, "inference")
    folder = os.path.join(inference, os.listdir(inference)[0])
    digests["test_run"] = _digest(output_dir, [evaluation, _folder_contents(folder)])
    digests["validation"] = _digest(output_dir, relation_validator(cfg, False, torch.device("cpu"))(model))
    again = os.path.join(output_dir, "evaluate_predictions")
    config_file, glove_folder = LAYOUTS[layout]
    reevaluation = _load_tool("evaluate_predictions").main([
        "--config-file", os.path.join(ROOT, config_file), "--predictions", os.path.join(folder, "predictions.npz"),
        "--output-dir", again, *CONFIG_OPTS, "DATASETS.DATA_DIR", data_dir,
        "GLOVE_DIR", os.path.join(data_dir, glove_folder), "OUTPUT_DIR", output_dir])
    digests["evaluate_predictions"] = _digest(output_dir, [reevaluation, _folder_contents(again)])
    return digests


def main() -> None:
    results = {}
    for layout in LAYOUTS:
        with tempfile.TemporaryDirectory() as data_dir, tempfile.TemporaryDirectory() as output_dir, \
                contextlib.redirect_stdout(sys.stderr):
            results[layout] = family_output_digests(layout, write_layout(layout, data_dir), output_dir)
    print(json.dumps(results, indent=4))


if __name__ == "__main__":
    main()

"""Benchmark: rank 0's peak memory and the time of the SGDet test pass at VG150 scale.

It runs the test tool's own pass, ``engine.relation_runs.test_relation_model`` (predict every image of the
split on every rank, send to rank 0, write the predictions file, evaluate, write the reports), with its
split loader and train-split statistics taken from a synthetic VG150-sized split and the model replaced by
a generator of SGDet outputs:

* the split: N images of 500-1024 px, 2-25 GT objects (mean 11.5) and 1-17 relations (mean 6.0) per
  image, long-tailed object and predicate classes (151 classes, 51 predicates), as in VG150's test split;
* the model: per image what the relation post-processor returns in SGDet: 80 detections (a jittered copy
  of each GT object, 80 % of them with its class, and random boxes for the rest), every ordered pair of them
  (6,320), each with its 51-way softmax ``rel_scores``, ranked by subject score x object score x best
  foreground probability. A pair whose detections copy a GT relation's objects gets that predicate's
  probability raised, so the metrics are those of a model that has learnt something. The scores are
  drawn from a small bank of softmax matrices (row-permuted per image) to keep generation cheap.

Each configuration runs in a fresh process (peak RSS is a high-water mark): for every size, the pass
with 1 process and with 2 gloo processes (loopback, a free port), then a rerun with
TEST.ALLOW_LOAD_FROM_CACHE that reads the predictions file back instead of predicting. It reports rank 0's
peak RSS (``ru_maxrss``), its RSS before the pass (imports, the split and the model), the wall and CPU time
of the pass on rank 0 (on a busy machine the CPU time is the steadier figure), the predictions file's size,
and whether every run of a size gives the same metrics. Not a test: run it by hand,

    python benchmarks/bench_sgdet_test_memory.py [--sizes 2000 8000 26446] [--processes 1 2]

The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rebalance_hca.config import get_cfg_defaults  # noqa: E402
from rebalance_hca.data import make_data_loader  # noqa: E402
from rebalance_hca.engine import relation_runs  # noqa: E402
from rebalance_hca.utils.comm import cleanup_distributed, init_distributed  # noqa: E402

VG150_TEST_IMAGES = 26446
NUM_CLASSES, NUM_PREDICATES = 151, 51
NUM_DETECTIONS = 80
NUM_PAIRS = NUM_DETECTIONS * (NUM_DETECTIONS - 1)
INPUT_SCALE = 0.1
"""Input frame / original frame: the loader's images are this small (the model ignores their pixels)."""
SCORE_BANK_SIZE = 4
GT_PREDICATE_BOOST = float(np.exp(5.0))
"""A GT pair's predicate probability is multiplied by this before renormalising (+5 on its logit)."""
METRICS = ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100", "ng-R@100", "ng-mR@100", "zR@100")


def long_tailed(rng: np.random.Generator, count: int, size: int, exponent: float) -> np.ndarray:
    """``size`` draws from 1..count-1 with probability ~ rank^-exponent (rank 1 the most frequent)."""
    weights = np.arange(1, count, dtype=np.float64) ** -exponent
    return rng.choice(np.arange(1, count), size=size, p=weights / weights.sum())


class SyntheticSplit(torch.utils.data.Dataset):
    """A VG150-test-like split held as the real one is: concatenated per-image arrays with offsets.

    ``dataset[i]`` is (a (3, h', w') zero image at INPUT_SCALE, {"image_index": i}, i); ``get_groundtruth``
    and ``get_img_info`` answer as the VG dataset does.
    """

    def __init__(self, num_images: int, seed: int) -> None:
        rng = np.random.default_rng([seed, num_images])
        self.widths = rng.integers(500, 1025, num_images)
        self.heights = rng.integers(500, 1025, num_images)
        self.object_counts = np.clip(rng.poisson(9.5, num_images) + 2, 2, 25)
        self.object_offsets = np.concatenate([[0], np.cumsum(self.object_counts)])
        image_of_box = np.repeat(np.arange(num_images), self.object_counts)
        sizes = np.column_stack([self.widths, self.heights])[image_of_box]
        corner = rng.uniform(0, 0.7, (len(image_of_box), 2)) * sizes
        extent = rng.uniform(0.05, 0.3, (len(image_of_box), 2)) * sizes
        self.boxes = np.concatenate([corner, np.minimum(corner + extent, sizes - 1)], 1).astype(np.float32)
        self.labels = long_tailed(rng, NUM_CLASSES, len(image_of_box), 1.0)
        relations, counts = [], []
        for count in self.object_counts.tolist():
            ordered_pairs = count * (count - 1)
            chosen = rng.choice(ordered_pairs, min(ordered_pairs, int(rng.poisson(5.0)) + 1), replace=False)
            subjects, rest = np.divmod(chosen, count - 1)
            objects = rest + (rest >= subjects)
            relations.append(np.column_stack([subjects, objects, long_tailed(rng, NUM_PREDICATES, len(chosen), 1.2)]))
            counts.append(len(chosen))
        self.relations = np.concatenate(relations).astype(np.int64)
        self.relation_offsets = np.concatenate([[0], np.cumsum(counts)])
        self.ind_to_classes = ["__background__"] + [f"class{i}" for i in range(1, NUM_CLASSES)]
        self.ind_to_predicates = ["__background__"] + [f"predicate{i}" for i in range(1, NUM_PREDICATES)]

    def __len__(self) -> int:
        return len(self.widths)

    def get_img_info(self, index: int) -> dict[str, int]:
        return {"width": int(self.widths[index]), "height": int(self.heights[index])}

    def get_groundtruth(self, index: int, evaluation: bool = False) -> dict[str, torch.Tensor]:
        """{"boxes" (n, 4) float32 original frame, "labels" (n,), "relation_tuple" (m, 3)}."""
        objects = slice(self.object_offsets[index], self.object_offsets[index + 1])
        relations = slice(self.relation_offsets[index], self.relation_offsets[index + 1])
        return {"boxes": torch.from_numpy(self.boxes[objects]), "labels": torch.from_numpy(self.labels[objects]),
                "relation_tuple": torch.from_numpy(self.relations[relations])}

    def relation_triplets(self) -> np.ndarray:
        """(subject_class, object_class, predicate) of every relation row. -> (R, 3) int64."""
        image_of_relation = np.repeat(np.arange(len(self)), np.diff(self.relation_offsets))
        first = self.object_offsets[image_of_relation]
        return np.column_stack([self.labels[first + self.relations[:, 0]], self.labels[first + self.relations[:, 1]],
                                self.relations[:, 2]])

    def __getitem__(self, index: int):
        size = (max(1, round(self.heights[index] * INPUT_SCALE)), max(1, round(self.widths[index] * INPUT_SCALE)))
        return torch.zeros(3, *size), {"image_index": torch.tensor(index)}, index


class SyntheticSGDetModel(nn.Module):
    """Stands in for the SGDet model: per image, the fields ``relation_head.postprocess.relation_predictions``
    returns, in the input frame, seeded by the image index (so any batching or sharding gives the same)."""

    def __init__(self, split: SyntheticSplit, seed: int) -> None:
        super().__init__()
        self.split = split
        self.seed = seed
        rng = np.random.default_rng([seed, 1])
        logits = rng.normal(0, 2, (SCORE_BANK_SIZE, NUM_PAIRS, NUM_PREDICATES)).astype(np.float32)
        self.score_bank = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
        self.bank_best = self.score_bank[:, :, 1:].max(axis=2)
        self.bank_best_label = self.score_bank[:, :, 1:].argmax(axis=2) + 1
        subjects, objects = np.nonzero(~np.eye(NUM_DETECTIONS, dtype=bool))
        self.pairs = np.column_stack([subjects, objects]).astype(np.int64)

    def forward(self, images, targets: list[dict]) -> list[dict[str, torch.Tensor]]:
        return [self.predict(int(target["image_index"]), size) for size, target in zip(images.image_sizes, targets)]

    def predict(self, index: int, input_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """{"boxes" (80, 4), "labels", "scores", "rel_pair_idxs" (6320, 2) ranked, "rel_scores" (6320, 51),
        "rel_labels" (6320,), "triplet_scores" (6320,)}."""
        rng = np.random.default_rng([self.seed, 2, index])
        groundtruth = self.split.get_groundtruth(index, evaluation=True)
        gt_boxes, gt_labels = groundtruth["boxes"].numpy(), groundtruth["labels"].numpy()
        info = self.split.get_img_info(index)
        source = rng.permutation(np.concatenate([np.arange(len(gt_boxes)),
                                                 np.full(NUM_DETECTIONS - len(gt_boxes), -1)]))
        copies = source >= 0
        sides = np.tile(np.maximum(gt_boxes[:, 2:] - gt_boxes[:, :2], 1.0), 2)
        boxes = np.empty((NUM_DETECTIONS, 4), dtype=np.float32)
        boxes[copies] = gt_boxes[source[copies]] + rng.normal(0, 0.05, (copies.sum(), 4)) * sides[source[copies]]
        corner = rng.uniform(0, 0.7, ((~copies).sum(), 2)) * (info["width"], info["height"])
        boxes[~copies] = np.concatenate([corner, corner + rng.uniform(20, 300, ((~copies).sum(), 2))], 1)
        right_class = copies & (rng.random(NUM_DETECTIONS) < 0.8)
        labels = np.where(right_class, gt_labels[np.maximum(source, 0)], rng.integers(1, NUM_CLASSES, NUM_DETECTIONS))
        scores = np.where(copies, rng.beta(5, 2, NUM_DETECTIONS), rng.beta(2, 5, NUM_DETECTIONS)).astype(np.float32)

        bank = int(rng.integers(SCORE_BANK_SIZE))
        rows = rng.permutation(NUM_PAIRS)                  # pair p takes row rows[p] of the bank matrix
        best, best_label = self.bank_best[bank][rows], self.bank_best_label[bank][rows]
        detection_of_gt = np.full(len(gt_boxes), -1)
        detection_of_gt[source[copies]] = np.flatnonzero(copies)
        boosted = {}                                       # pair -> its scores with the GT predicate raised
        for subject, obj, predicate in groundtruth["relation_tuple"].tolist():
            ds, do = detection_of_gt[subject], detection_of_gt[obj]
            pair = ds * (NUM_DETECTIONS - 1) + do - (do > ds)
            row = boosted.get(pair, self.score_bank[bank][rows[pair]]).copy()
            row[predicate] *= GT_PREDICATE_BOOST
            boosted[pair] = row / row.sum()
            best[pair], best_label[pair] = boosted[pair][1:].max(), boosted[pair][1:].argmax() + 1
        triplet_scores = best * scores[self.pairs[:, 0]] * scores[self.pairs[:, 1]]
        order = np.argsort(-triplet_scores, kind="stable")
        rel_scores = self.score_bank[bank][rows[order]]
        position = np.empty(NUM_PAIRS, dtype=np.int64)
        position[order] = np.arange(NUM_PAIRS)
        for pair, row in boosted.items():
            rel_scores[position[pair]] = row
        scale = np.array([input_size[1] / info["width"], input_size[0] / info["height"]] * 2, dtype=np.float32)
        return {"boxes": torch.from_numpy(boxes * scale), "labels": torch.from_numpy(labels),
                "scores": torch.from_numpy(scores), "rel_pair_idxs": torch.from_numpy(self.pairs[order]),
                "rel_scores": torch.from_numpy(rel_scores), "rel_labels": torch.from_numpy(best_label[order]),
                "triplet_scores": torch.from_numpy(triplet_scores[order])}


def benchmark_config(output_dir: str, processes: int, batch_per_process: int, use_cache: bool):
    cfg = get_cfg_defaults()
    cfg.merge_from_list(["MODEL.RELATION_ON", True, "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", False,
                         "MODEL.ROI_RELATION_HEAD.USE_GT_OBJECT_LABEL", False, "DATALOADER.NUM_WORKERS", 0,
                         "TEST.IMS_PER_BATCH", batch_per_process * processes,
                         "TEST.ALLOW_LOAD_FROM_CACHE", use_cache, "OUTPUT_DIR", output_dir])
    return cfg


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_rank(rank: int, args: argparse.Namespace, port: int) -> None:
    """One rank of one configuration: the test pass on the synthetic split; rank 0 writes the figures."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(args.world_size)})
    device = torch.device("cpu")
    distributed = init_distributed(device)
    split = SyntheticSplit(args.images, args.seed)
    model = SyntheticSGDetModel(split, args.seed)
    train_counts = np.bincount(split.relations[:, 2], minlength=NUM_PREDICATES)
    zeroshot = split.relation_triplets()[::50]
    # The test tool's pass, with its split loader and train-split statistics taken from the synthetic split.
    relation_runs.make_data_loader = lambda cfg, mode, is_distributed: make_data_loader(
        cfg, mode=mode, is_distributed=is_distributed, dataset=split)
    relation_runs.train_split_statistics = lambda *_args, **_kwargs: (zeroshot, train_counts)
    cfg = benchmark_config(args.output_dir, args.world_size, args.batch, args.use_cache)
    rss_before = peak_rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    evaluation = relation_runs.test_relation_model(cfg, model, device, distributed, weights="")
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if rank == 0:
        results = evaluation["sgg"]
        figures = {"peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_pass_mb": round(rss_before, 1),
                   "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                   "metrics": {key: results[key] for key in METRICS} | {"mAP": evaluation["detection"]["mAP"]}}
        Path(args.result_file).write_text(json.dumps(figures))
    cleanup_distributed()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_worker(args: argparse.Namespace) -> None:
    port = free_port()
    if args.world_size == 1:
        run_rank(0, args, port)
    else:
        torch.multiprocessing.start_processes(run_rank, args=(args, port), nprocs=args.world_size,
                                              start_method="spawn")


def measure(images: int, processes: int, use_cache: bool, output_dir: str, batch: int, seed: int) -> dict:
    """One configuration in a fresh process; its figures."""
    result_file = os.path.join(output_dir, f"figures_{processes}_{int(use_cache)}.json")
    command = [sys.executable, __file__, "--worker", "--images", str(images), "--world-size", str(processes),
               "--batch", str(batch), "--seed", str(seed), "--output-dir", output_dir, "--result-file", result_file]
    if use_cache:
        command.append("--use-cache")
    log_file = os.path.join(output_dir, f"log_{processes}_{int(use_cache)}.txt")
    with open(log_file, "w") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {completed.returncode}); see {log_file}:\n"
                         + Path(log_file).read_text()[-3000:])
    return json.loads(Path(result_file).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, VG150_TEST_IMAGES],
                        help="numbers of test images")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="numbers of gloo processes")
    parser.add_argument("--batch", type=int, default=8, help="test images per process and batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="", help="where the runs write (default: a temporary folder)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--world-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--use-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return

    print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs; SGDet, "
          f"{NUM_DETECTIONS} detections and {NUM_PAIRS} pairs per image, {NUM_PREDICATES} predicates")
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_sgdet_") as scratch:
        for images in args.sizes:
            output_dir = os.path.join(args.output_dir or scratch, f"images_{images}")
            os.makedirs(output_dir, exist_ok=True)
            runs = [(processes, False) for processes in args.processes] + [(1, True)]
            figures = [measure(images, processes, use_cache, output_dir, args.batch, args.seed)
                       for processes, use_cache in runs]
            predictions = os.path.join(output_dir, "inference", "VG_stanford_filtered_with_attribute_test",
                                       relation_runs.PREDICTIONS_FILE)
            file_mb = os.path.getsize(predictions) / 2**20
            same = len({json.dumps(figure["metrics"], sort_keys=True) for figure in figures}) == 1
            for (processes, use_cache), figure in zip(runs, figures):
                label = "cache" if use_cache else f"{processes} proc"
                print(f"{images:>6} images  {label:<7} rank-0 peak RSS {figure['peak_rss_mb']:8.1f} MB "
                      f"(before the pass {figure['rss_before_pass_mb']:7.1f} MB)  {figure['seconds']:7.1f} s, "
                      f"rank-0 CPU {figure['cpu_seconds']:7.1f} s")
                rows.append({"images": images, "processes": processes, "from_cache": use_cache,
                             **{key: figure[key] for key in ("peak_rss_mb", "rss_before_pass_mb", "seconds",
                                                             "cpu_seconds")}})
            print(f"{images:>6} images  predictions file {file_mb:.1f} MB; metrics identical across runs: {same}; "
                  f"R@100 {figures[0]['metrics']['R@100']:.4f}, mR@100 {figures[0]['metrics']['mR@100']:.4f}, "
                  f"mAP {figures[0]['metrics']['mAP']:.4f}")
            rows.append({"images": images, "predictions_file_mb": round(file_mb, 1), "metrics_identical": same})
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"benchmark": "sgdet_test_memory", "runs": rows,
                      "total_seconds": round(time.perf_counter() - started, 1),
                      "total_cpu_seconds": round(children.ru_utime + children.ru_stime, 1)}))


if __name__ == "__main__":
    main()

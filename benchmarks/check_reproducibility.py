"""Run the same training several times, each in a fresh process, and compare the final weights bit for bit
(a check on this machine, not a test; docs/training.md#reproducibility).

    .venv/bin/python benchmarks/check_reproducibility.py --tool relation_train_net \
        --config configs/synthetic/relation_HCA_R18_FPN.yaml --runs 5 [--threads 2,2,2,1,1] [--load 2] \
        [KEY VALUE ...]

Each run is ``tools/<tool>.py --config-file CONFIG KEY VALUE ... OUTPUT_DIR <temporary> --skip-test`` with
OMP_NUM_THREADS from --threads (one value per run; "" = torch's default). --load N keeps N busy-looping
processes running during runs with an odd index (1, 3, ...), so that runs on a loaded and on a quieter
machine are compared. Prints, for each run, the largest absolute weight difference from run 0 and how many
tensors differ; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSY_LOOP = "while True: pass"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool", default="relation_train_net", choices=["relation_train_net", "detector_pretrain_net"])
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "synthetic", "relation_HCA_R18_FPN.yaml"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", default="", help="comma-separated OMP_NUM_THREADS per run (default: torch's)")
    parser.add_argument("--load", type=int, default=0, help="busy processes during the odd-numbered runs")
    parser.add_argument("opts", nargs="*", default=[])
    return parser.parse_args()


def train(tool: str, config: str, opts: list[str], output_dir: str, threads: str, load: int) -> float:
    """One training in a fresh process (``load`` busy processes beside it); returns its wall seconds."""
    environment = {**os.environ, "PYTHONPATH": ROOT}
    environment.pop("OMP_NUM_THREADS", None)
    if threads:
        environment["OMP_NUM_THREADS"] = threads
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(load)]
    start = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", f"{tool}.py"), "--config-file", config,
                                 *opts, "OUTPUT_DIR", output_dir, "--skip-test"],
                                env=environment, capture_output=True, text=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    if result.returncode != 0:
        sys.exit(f"{tool} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def differences(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> tuple[float, int]:
    """(largest absolute difference, number of tensors that differ) between two state dicts."""
    differing = [name for name, value in reference.items() if not torch.equal(value, other[name])]
    largest = max(((reference[name].double() - other[name].double()).abs().max().item() for name in differing),
                  default=0.0)
    return largest, len(differing)


def main() -> None:
    args = parse_args()
    threads = args.threads.split(",") if args.threads else [""] * args.runs
    if len(threads) != args.runs:
        sys.exit(f"--threads gives {len(threads)} values for {args.runs} runs")
    rows = []
    with tempfile.TemporaryDirectory() as output:
        reference = None
        for run, run_threads in enumerate(threads):
            load = args.load if run % 2 else 0
            run_dir = os.path.join(output, f"run{run}")
            seconds = train(args.tool, args.config, args.opts, run_dir, run_threads, load)
            weights = torch.load(os.path.join(run_dir, "model_final.pth"), map_location="cpu",
                                 weights_only=True)["model"]
            reference = reference if reference is not None else weights
            largest, count = differences(reference, weights)
            rows.append({"run": run, "threads": run_threads or str(torch.get_num_threads()), "busy_processes": load,
                         "seconds": round(seconds, 1), "max_abs_difference": largest, "tensors_differing": count})
            print(f"run {run}: OMP_NUM_THREADS {rows[-1]['threads']}, {load} busy processes, {seconds:.0f} s: "
                  f"{count} of {len(weights)} tensors differ from run 0 (largest difference {largest:.3g})")
    identical = all(not row["tensors_differing"] for row in rows)
    print(json.dumps({"tool": args.tool, "runs": rows, "bit_identical": identical,
                      "machine": f"{platform.machine()} {os.cpu_count()} cores", "torch": torch.__version__}))


if __name__ == "__main__":
    main()

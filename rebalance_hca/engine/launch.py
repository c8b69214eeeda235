"""What every training / testing tool does first: SGB's command line, OUTPUT_DIR held for the run (its lock,
docs/configuration.md#one-run-per-output_dir), the device and process group, the logger, seeds, and the
merged config saved with the run.

Command line (SGB's shape): ``--config-file FILE``, ``--local_rank`` / ``--local-rank`` (accepted for
torch.distributed.launch; torchrun's LOCAL_RANK is used), ``--skip-test``, then ``KEY VALUE`` overrides,
which may also come before the flags. Tools add their own flags through ``extra_arguments``.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

from ..config import load_config
from ..utils.atomic import atomic_write, remove_orphaned_temporaries
from ..utils.cli import UserInputError, user_errors
from ..utils.comm import (cleanup_distributed, get_rank, get_world_size, init_distributed, is_main_process,
                          report_failure, select_device)
from ..utils.determinism import configure_determinism, refused_operations_as_user_errors
from ..utils.logging import setup_logger
from ..utils.run_lock import RunLock
from ..utils.seed import seed_everything

LOGGER_NAME = "rebalance_hca"


def parse_args(description: str, argv: Sequence[str] | None = None,
               extra_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """SGB's tool arguments (module docstring) plus the tool's own; ``args.opts`` holds the overrides."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the yaml config")
    parser.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=0,
                        help="accepted for torch.distributed.launch; torchrun's LOCAL_RANK is what is used")
    parser.add_argument("--skip-test", dest="skip_test", action="store_true",
                        help="do not test the final model on DATASETS.TEST")
    if extra_arguments is not None:
        extra_arguments(parser)
    parser.add_argument("opts", nargs="*", default=[], help="config overrides as KEY VALUE pairs")
    args, unknown = parser.parse_known_args(argv)
    args.opts = [*args.opts, *unknown]
    return args


def load_tool_config(args: argparse.Namespace):
    """The frozen config of ``args`` (defaults < --config-file < overrides); a bad one is a UserInputError."""
    with user_errors("reading the config"):
        return load_config(args.config_file, args.opts)


def check_output_dir(output_dir: str) -> None:
    """OUTPUT_DIR must be creatable and writable; a UserInputError naming it otherwise."""
    if not output_dir:
        return
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, f".write_test_{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as error:
        raise UserInputError(f"OUTPUT_DIR {output_dir!r} cannot be written: {error}") from error


def cpu_threads_per_process() -> int:
    """Intra-op threads for one of LOCAL_WORLD_SIZE CPU processes on this machine (at least 1): several
    processes each using every core slow each other down many times over. The cores are those this process
    may run on (a SLURM allocation or ``taskset`` gives fewer than the machine has)."""
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(local_processes, 1))


def setup_run(cfg, config_header: str = "") -> tuple[torch.device, bool, logging.Logger]:
    """Deterministic kernels (DETERMINISTIC, set before CUDA starts), device (MODEL.DEVICE), process group
    (DIST_TIMEOUT), logger (console + OUTPUT_DIR/log.txt on rank 0), seeds (SEED + rank), and the merged config
    saved as OUTPUT_DIR/config.yml with ``config_header`` as comments."""
    configure_determinism(cfg.DETERMINISTIC)
    with user_errors("setting up the run"):
        device = select_device(cfg.MODEL.DEVICE)
    with user_errors("setting up the run"):
        distributed = init_distributed(device, cfg.DIST_TIMEOUT)
    if device.type == "cpu" and distributed:
        torch.set_num_threads(cpu_threads_per_process())
    if cfg.OUTPUT_DIR and is_main_process():
        with atomic_write(os.path.join(cfg.OUTPUT_DIR, "config.yml"), binary=False) as stream:
            header = "".join(f"# {line}\n" for line in config_header.splitlines())
            stream.write(header + cfg.dump())
    logger = setup_logger(LOGGER_NAME, cfg.OUTPUT_DIR, get_rank())
    logger.info("Running with config:\n%s", cfg.dump())
    if get_world_size() > 1:
        logger.info("%d processes, %s backend", get_world_size(), "nccl" if device.type == "cuda" else "gloo")
    seed_everything(cfg.SEED + get_rank())
    return device, distributed, logger


@dataclass
class OutputDirClaim:
    """OUTPUT_DIR held by this run: its lock, and the temporary files of a killed save removed on taking it."""

    lock: RunLock
    removed_temporaries: list[str]


def claim_output_dir(output_dir: str) -> OutputDirClaim | None:
    """On rank 0 of the launch: check that OUTPUT_DIR can be written, take its run lock (OutputDirInUse, a
    UserInputError naming the holder, when another run holds it) and remove the temporary files a killed
    save left there. None elsewhere, and without an OUTPUT_DIR: one process of a launch holds the folder."""
    if not output_dir or not is_main_process_of_launch():
        return None
    check_output_dir(output_dir)
    lock = RunLock(output_dir)
    with user_errors("locking OUTPUT_DIR"):
        lock.acquire()
    return OutputDirClaim(lock, remove_orphaned_temporaries(output_dir))


@contextlib.contextmanager
def session(cfg, config_header: str = "") -> Iterator[tuple[torch.device, bool, logging.Logger]]:
    """``claim_output_dir`` and ``setup_run`` for the block; then leave the process group and release
    OUTPUT_DIR however the block ends. An operation that DETERMINISTIC True refuses ends the block as a
    UserInputError naming it; in a process group, a block that raises is reported first
    (``report_distributed_failure``)."""
    claim = claim_output_dir(cfg.OUTPUT_DIR)
    distributed = False
    try:
        device, distributed, logger = setup_run(cfg, config_header)
        if claim is not None:
            _log_claim(claim, logger)
        with refused_operations_as_user_errors():
            yield device, distributed, logger
    except Exception as error:
        if distributed:
            report_distributed_failure(error, logger)
        raise
    finally:
        cleanup_distributed()
        if claim is not None:
            claim.lock.release()


def _log_claim(claim: OutputDirClaim, logger: logging.Logger) -> None:
    if claim.lock.taken_over is not None:
        logger.warning("Took over the lock %s of a run that is no longer running: %s", claim.lock.path,
                       claim.lock.taken_over.describe())
    if claim.removed_temporaries:
        logger.info("Removed %d temporary file(s) left in OUTPUT_DIR by a killed save: %s",
                    len(claim.removed_temporaries), ", ".join(claim.removed_temporaries))


def report_distributed_failure(error: Exception, logger: logging.Logger) -> None:
    """Say which ranks failed and how (``comm.report_failure``: one line, logged on rank 0 and printed to
    stderr on the others, whose loggers are silent), and give torchrun the error and its traceback for its
    failure summary (the file torchrun names in TORCHELASTIC_ERROR_FILE; nothing without torchrun). Call it
    while ``error`` is being handled."""
    line = report_failure(error)
    if is_main_process():
        logger.error(line)
    else:
        print(line, file=sys.stderr, flush=True)
    ErrorHandler().record_exception(error)


def is_main_process_of_launch() -> bool:
    """Rank 0 of the launch, known from torchrun's RANK before the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0

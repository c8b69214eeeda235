"""torch.distributed helpers: one process per device, launched by torchrun (gloo on CPU, NCCL on GPU).

Every helper also works without torch.distributed initialised (a single process, rank 0 of 1).
"""
from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .cli import UserInputError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_local_rank() -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK), 0 when not launched by torchrun."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op for a single process."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather(data: Any) -> list[Any]:
    """Picklable ``data`` of every rank, as a list indexed by rank ([data] for a single process)."""
    world_size = get_world_size()
    if world_size == 1:
        return [data]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, data)
    return gathered


def broadcast_object(data: Any, source_rank: int = 0) -> Any:
    """``data`` of ``source_rank`` on every rank."""
    if get_world_size() == 1:
        return data
    holder = [data]
    dist.broadcast_object_list(holder, src=source_rank)
    return holder[0]


def reduce_dict_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scalar tensors averaged over ranks (every rank gets the mean), keys in sorted order."""
    world_size = get_world_size()
    if world_size == 1:
        return values
    with torch.no_grad():
        names = sorted(values)
        stacked = torch.stack([values[name].detach() for name in names])
        dist.all_reduce(stacked)
        stacked /= world_size
    return dict(zip(names, stacked))


def select_device(device_name: str) -> torch.device:
    """The torch device for MODEL.DEVICE; on CUDA, this process's GPU (LOCAL_RANK).

    Raises a UserInputError telling the user to pass ``MODEL.DEVICE cpu`` when CUDA is asked for but absent.
    """
    device = torch.device(device_name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"MODEL.DEVICE is {device_name!r} but CUDA is not available on this machine; "
                               "pass MODEL.DEVICE cpu on the command line (or in the config) to run on the CPU")
        if device.index is None:
            device = torch.device("cuda", get_local_rank())
        torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device, timeout_seconds: float) -> bool:
    """Join the process group when launched with WORLD_SIZE > 1 (NCCL for CUDA, gloo else).

    Returns whether the run is distributed. Reads MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE from the
    environment (``env://``). ``timeout_seconds`` (DIST_TIMEOUT) bounds the wait for the other processes, when
    the group forms and in every collective after: a rank that died, hung or lost its network makes the others
    fail with an error instead of waiting forever. Raises ValueError for a timeout that is not positive and
    ConnectionError, naming MASTER_ADDR:MASTER_PORT, when the group does not form within it.
    """
    global _failure_reports
    if not timeout_seconds > 0:
        raise ValueError(f"DIST_TIMEOUT must be a positive number of seconds, got {timeout_seconds}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return False
    if not is_distributed():
        timeout = timedelta(seconds=timeout_seconds)
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            store, rank, world_size = next(dist.rendezvous("env://", timeout=timeout))
            dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
        except dist.DistError as error:
            endpoint = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
            raise ConnectionError(
                f"rank {os.environ.get('RANK')} of {world_size}: the process group at MASTER_ADDR:MASTER_PORT "
                f"{endpoint} did not form within DIST_TIMEOUT {timeout_seconds:g} s: {one_line(str(error))}"
            ) from error
        _failure_reports = FailureReports(store, rank, world_size)
    synchronize()
    return True


def one_line(text: str, limit: int = 400) -> str:
    """``text`` with its whitespace runs (newlines included) collapsed to one space, cut to ``limit`` chars."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class FailureReports:
    """What the ranks of one process group say when they stop with an error, shared through its store, so
    that every surviving rank can name the rank that failed first.

    A rank that stops ``post``s its error (numbered in the order the store receives them), then waits up to
    ``wait_seconds`` for every other rank's report: a rank that raised reports at once, while one that died,
    hung or is still blocked in a collective with a dead rank never does. Keys live under a prefix per torchrun
    attempt (TORCHELASTIC_RESTART_COUNT), in case the store outlives an attempt.
    """

    def __init__(self, store: dist.Store, rank: int, world_size: int, wait_seconds: float = 3.0) -> None:
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        self.store = dist.PrefixStore(f"rebalance_hca/failures/{attempt}/", store)
        self.rank = rank
        self.world_size = world_size
        self.wait_seconds = wait_seconds

    def post(self, error: BaseException) -> str:
        """Record ``error`` as this rank's and return one line: this rank's error, then every rank's report
        in the order received, then the ranks without a report. Store failures (its host is gone) are said
        in the line instead of raised."""
        own = f"rank {self.rank} of {self.world_size} ({socket.gethostname()}) stopped: {describe_error(error)}"
        try:
            self.store.set_timeout(timedelta(seconds=self.wait_seconds))
            order = self.store.add("count", 1)
            self.store.set(f"rank{self.rank}", f"{order}\trank {self.rank} ({socket.gethostname()}): "
                                               f"{describe_error(error)}")
            keys = [f"rank{rank}" for rank in range(self.world_size)]
            deadline = time.monotonic() + self.wait_seconds
            while not self.store.check(keys) and time.monotonic() < deadline:
                time.sleep(0.1)
            reports = {rank: self.store.get(key).decode().split("\t", 1) for rank, key in enumerate(keys)
                       if self.store.check([key])}
        except (dist.DistError, RuntimeError) as store_error:
            return f"{own}; the other ranks' failure reports cannot be read ({one_line(str(store_error), 200)})"
        in_order = sorted(reports, key=lambda rank: int(reports[rank][0]))
        received = "; ".join("this rank" if rank == self.rank else reports[rank][1] for rank in in_order)
        line = f"{own}. Failure reports, first received first: {received}"
        silent = sorted(set(range(self.world_size)) - set(reports))
        if silent:
            line += (f". No report from rank {', '.join(map(str, silent))} within {self.wait_seconds:g} s: it died, "
                     "hung, or is still blocked in a collective (torchrun's failure summary names a rank that died)")
        return line


_failure_reports: FailureReports | None = None


def describe_error(error: BaseException) -> str:
    """``Type: message`` of ``error`` on one line."""
    return one_line(f"{type(error).__name__}: {error}")


def report_failure(error: BaseException) -> str:
    """One line saying that this rank stops on ``error`` and, in a process group, which ranks failed and how
    (``FailureReports.post``, which waits a few seconds for the other ranks' reports)."""
    if _failure_reports is None:
        return f"stopped: {describe_error(error)}"
    return _failure_reports.post(error)


def cleanup_distributed() -> None:
    """Leave the process group, if this process joined one."""
    global _failure_reports
    if is_distributed():
        dist.destroy_process_group()
    _failure_reports = None


def gather_to_main(data: Any) -> list[Any] | None:
    """Picklable ``data`` of every rank, as a list indexed by rank, on rank 0 only (None elsewhere): unlike
    ``all_gather``, no other rank holds everything ([data] for a single process)."""
    world_size = get_world_size()
    if world_size == 1:
        return [data]
    gathered: list[Any] | None = [None] * world_size if get_rank() == 0 else None
    dist.gather_object(data, gathered, dst=0)
    return gathered


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on every rank (a collective: every rank must call it); ``device`` is where the
    backend communicates (this rank's GPU with NCCL, the CPU with gloo)."""
    if get_world_size() == 1:
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())

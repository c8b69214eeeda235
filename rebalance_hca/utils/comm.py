"""torch.distributed helpers: one process per device, launched by torchrun (gloo on CPU, NCCL on GPU).

Every helper also works without torch.distributed initialised (a single process, rank 0 of 1).
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


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

    Raises a RuntimeError telling the user to pass ``MODEL.DEVICE cpu`` when CUDA is asked for but absent.
    """
    device = torch.device(device_name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"MODEL.DEVICE is {device_name!r} but CUDA is not available on this machine; "
                               "pass MODEL.DEVICE cpu on the command line (or in the config) to run on the CPU")
        if device.index is None:
            device = torch.device("cuda", get_local_rank())
        torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device, timeout_minutes: int = 30) -> bool:
    """Join the process group when launched by torchrun with WORLD_SIZE > 1 (NCCL for CUDA, gloo else).

    Returns whether the run is distributed. Reads MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE from the
    environment (``env://``).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return False
    if not is_distributed():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(minutes=timeout_minutes))
    synchronize()
    return True


def cleanup_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if is_distributed():
        dist.destroy_process_group()


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

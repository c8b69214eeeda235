"""Deterministic kernels (the DETERMINISTIC key): torch's deterministic mode, cuDNN and cuBLAS settings, and
the one-line report of an operation that has no deterministic implementation.

What each setting guarantees, and what it costs, is measured in docs/training.md#reproducibility.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator

import torch

from .cli import UserInputError

CUBLAS_WORKSPACE_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"
"""cuBLAS's workspace setting that makes its GEMMs deterministic (CUDA >= 10.2; ":16:8" works too)."""

_NOT_DETERMINISTIC = re.compile(r"^\s*(?P<operation>\S+) does not have a deterministic implementation")


def configure_determinism(deterministic: bool) -> None:
    """Turn torch's deterministic mode on or off (off too, so that a later run in the same process does not
    inherit it). On, it also turns cuDNN's benchmark off and its deterministic algorithms on (both stay so),
    and sets CUBLAS_WORKSPACE_CONFIG to ":4096:8" unless the environment already sets it: call it before CUDA
    starts (cuBLAS reads the variable when it creates its handle)."""
    if deterministic:
        os.environ.setdefault(CUBLAS_WORKSPACE_ENV, CUBLAS_DETERMINISTIC_WORKSPACE)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(deterministic)


def nondeterministic_operation(error: BaseException) -> str | None:
    """The operation torch names when deterministic mode refuses it (e.g. "upsample_nearest2d_backward_out_cuda"),
    None when ``error`` is something else."""
    if not isinstance(error, RuntimeError):
        return None
    match = _NOT_DETERMINISTIC.match(str(error))
    return match.group("operation") if match else None


@contextlib.contextmanager
def refused_operations_as_user_errors() -> Iterator[None]:
    """Run the block; an operation refused by deterministic mode becomes a one-line UserInputError naming it
    (the tools print it as ``error: ...``). Every other error passes through unchanged."""
    try:
        yield
    except RuntimeError as error:
        operation = nondeterministic_operation(error)
        if operation is None:
            raise
        raise UserInputError(
            f"DETERMINISTIC True: {operation} has no deterministic implementation in torch "
            f"{torch.__version__} on this device; set DETERMINISTIC False to run it") from error

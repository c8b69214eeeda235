"""Reading files written with ``torch.save`` (checkpoints, weights, triplet files), with one clear error for
a file that torch cannot load.

A checkpoint cut short by a full disk or an interrupted copy makes ``torch.load`` raise whatever its reader
meets first (a RuntimeError from the zip reader, an EOFError, a KeyError, an UnpicklingError), with a message
that does not name the file; here every such failure becomes one ValueError naming it.
"""
from __future__ import annotations

from typing import Any

import torch


def _first_sentence(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    end = line.find(". ")
    return line[:end + 1] if end >= 0 else line


def load_torch_file(path: str, what: str = "torch file", mmap: bool = False) -> Any:
    """``torch.load(path)`` onto the CPU with ``weights_only=True`` (memory-mapped with ``mmap``, for
    zip-format files). An OSError about opening the file (it names the file: permission denied, ...) passes
    as it is; any other failure to load is a ValueError
    "<what> <path> cannot be read (truncated, damaged or not a file torch.save wrote): <reason>"."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # torch's readers raise many types for a damaged file; all mean the same here
        if isinstance(error, OSError) and error.filename is not None:
            raise
        reason = _first_sentence(str(error)) or type(error).__name__
        raise ValueError(f"{what} {path} cannot be read (truncated, damaged or not a file torch.save wrote): "
                         f"{reason}") from error

"""What every family's file reader shares: the error a bad dataset file raises, and file identities for
the per-file-version caches."""
from __future__ import annotations

import os


class DataFormatError(ValueError):
    """A dataset file that is missing, malformed, or inconsistent with another; the message names the file."""


def file_fingerprint(path: str) -> tuple[str, int, int]:
    """(absolute path, size, mtime_ns): changes whenever the file is replaced or rewritten."""
    stat = os.stat(path)
    return os.path.abspath(path), stat.st_size, stat.st_mtime_ns


def require_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise DataFormatError(f"{what} not found: {path}")

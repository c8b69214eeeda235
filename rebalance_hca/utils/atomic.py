"""Atomic file writing: a killed process leaves either the old file or the new one, never half of one.

Files get the permissions ``open()`` would give them (0o666 minus the umask). Caches are written with
``write_cache``, which carries on without the cache where its folder cannot be written.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
from typing import IO, Callable, Iterator

logger = logging.getLogger(__name__)
_unwritable_cache_folders: set[str] = set()  # folders already warned about, once per process


@contextlib.contextmanager
def atomic_write(path: str, binary: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on normal exit it replaces ``path`` in one rename.

    The temporary file is created as ``open(path, "w")`` creates a file (mode 0o666 minus the umask, where
    ``tempfile.mkstemp`` would give a private 0o600). On an exception the temporary file is removed and
    ``path`` is left untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb" if binary else "w", encoding=None if binary else "utf-8") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_cache(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write the cache file ``path`` atomically with ``write(binary stream)``.

    A cache only saves time: where it cannot be written (OSError, e.g. a read-only GLOVE_DIR), warn once per
    folder and return; the caller goes on with the values it computed.
    """
    try:
        with atomic_write(path) as stream:
            write(stream)
    except OSError as error:
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in _unwritable_cache_folders:
            _unwritable_cache_folders.add(folder)
            logger.warning("cannot write cache files in %s (%s): %s and any later cache there are recomputed "
                           "on every run instead", folder, error.strerror or error, os.path.basename(path))

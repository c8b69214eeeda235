"""One run per OUTPUT_DIR: a lock file naming the process that writes there.

``OUTPUT_DIR/run.lock`` holds the process id, host, start time and command of the run holding the folder,
and (on Linux) the boot id and the process's start tick, which tell a live holder from a later process that
reuses its id. The file is created atomically (it never exists half-written). A second run is refused,
naming the holder. A lock whose holder is gone (same host, and its process is no longer running: killed,
or a torchrun worker that its agent restarted) is stale: the next run takes it over with a warning. A lock
held from another host cannot be checked from here and is refused; its message says which file to remove
once that run is over.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass

from .atomic import temporary_path
from .cli import UserInputError

LOCK_FILE_NAME = "run.lock"
_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


class OutputDirInUse(UserInputError):
    """OUTPUT_DIR is held by another run; the message names it (pid, host, since when)."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: pid and host, ``since`` (local time, ISO 8601), the command, and for the liveness
    check on Linux the boot id and the process's start tick ("" and -1 where /proc does not say)."""

    pid: int
    host: str
    since: str
    command: str
    boot_id: str = ""
    start_tick: int = -1

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since} ({self.command})"


def _boot_id() -> str:
    try:
        with open(_BOOT_ID_FILE, encoding="ascii") as stream:
            return stream.read().strip()
    except OSError:
        return ""


def _process_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of process ``pid`` from /proc/<pid>/stat (fields 3
    and 22); None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            fields_after_name = stream.read().rsplit(")", 1)[1].split()
        return fields_after_name[0], int(fields_after_name[19])
    except (OSError, IndexError, ValueError):
        return None


def this_process() -> LockHolder:
    """A LockHolder describing the calling process."""
    return LockHolder(pid=os.getpid(), host=socket.gethostname(), since=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      command=os.path.basename(sys.argv[0]) or "python",
                      boot_id=_boot_id(), start_tick=(_process_stat(os.getpid()) or ("", -1))[1])


def holder_is_running(holder: LockHolder) -> bool:
    """Whether ``holder`` (a lock from this host) still runs: its pid exists and is no zombie and, where the
    lock recorded them, this boot and the process's start tick are still its own (so a later process that
    reuses the id, e.g. after a reboot or in a new container, does not count). Off POSIX systems, where
    signal 0 is no probe, every holder counts as running."""
    if os.name != "posix":
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    if holder.boot_id and holder.boot_id != _boot_id():
        return False
    stat = _process_stat(holder.pid)
    if stat is None:
        return True
    state, start_tick = stat
    return state not in ("Z", "X") and (holder.start_tick < 0 or start_tick == holder.start_tick)


class RunLock:
    """The lock of one OUTPUT_DIR. ``acquire`` takes it or raises OutputDirInUse; ``release`` removes it if it
    is still this process's. ``taken_over`` is the stale holder replaced by ``acquire``, if any."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path = os.path.join(folder, LOCK_FILE_NAME)
        self.holder: LockHolder | None = None
        self.taken_over: LockHolder | None = None

    def acquire(self) -> None:
        me = this_process()
        for _ in range(3):
            if self._create(me):
                self.holder = me
                return
            found = self._read()
            if found is None:  # removed meanwhile by its holder: try again
                continue
            holder, identity = found
            in_use = (f"OUTPUT_DIR {self.folder} is in use by another run: {holder.describe()}; wait for it to end "
                      "or choose another OUTPUT_DIR")
            if holder.host != me.host:
                raise OutputDirInUse(f"{in_use} (that host's process cannot be checked from here: once that run is "
                                     f"over, remove {self.path})")
            if holder_is_running(holder):
                raise OutputDirInUse(in_use)
            if self._remove_if_unchanged(identity):
                self.taken_over = holder
        raise OutputDirInUse(f"OUTPUT_DIR {self.folder}: another run took {self.path} at the same time")

    def release(self) -> None:
        """Remove the lock file if this process still holds it (a no-op otherwise)."""
        if self.holder is None:
            return
        found = self._read()
        if found is not None and found[0].pid == self.holder.pid and found[0].host == self.holder.host:
            self._remove_if_unchanged(found[1])
        self.holder = None

    def _create(self, holder: LockHolder) -> bool:
        """Create the lock file holding ``holder`` in one step: a hard link of a written temporary file, so that
        the file never exists half-written (where the file system has no hard links, an exclusive create and
        a write). False when it exists."""
        text = json.dumps(asdict(holder))
        temporary = temporary_path(self.path)
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(text)
        try:
            os.link(temporary, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here
            return self._create_exclusively(text)
        finally:
            os.remove(temporary)

    def _create_exclusively(self, text: str) -> bool:
        try:
            handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        return True

    def _read(self) -> tuple[LockHolder, tuple[int, int]] | None:
        """(holder, file identity) of the lock file; None when there is none. A file that does not parse
        (written by something else) is reported with its path."""
        try:
            with open(self.path, encoding="utf-8") as stream:
                identity = os.fstat(stream.fileno())
                text = stream.read()
        except FileNotFoundError:
            return None
        try:
            holder = LockHolder(**json.loads(text))
        except (ValueError, TypeError) as error:
            raise OutputDirInUse(f"OUTPUT_DIR {self.folder}: {self.path} is not a lock this project wrote ({error}); "
                                 "remove it if no run uses this folder") from error
        return holder, (identity.st_ino, identity.st_mtime_ns)

    def _remove_if_unchanged(self, identity: tuple[int, int]) -> bool:
        """Remove the lock file if it is still the file read with ``identity``."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        if (current.st_ino, current.st_mtime_ns) != identity:
            return False
        os.remove(self.path)
        return True

"""How the command-line tools report a user's mistake: one clear line and exit code 2, not a traceback.

A bad config (unknown key, wrong value), a bad data file, a missing or unfitting checkpoint or an output
folder that cannot be written is the user's to fix; the tools wrap the work that reads those in
``user_errors`` and their ``main`` in ``run_tool``. Anything else (a real bug) keeps its traceback. Set
REBALANCE_HCA_TRACEBACK=1 to get the traceback of a reported error too.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator

from tqdm import tqdm

from .atomic import DiskFullError
from .state_dict import StateDictMismatchError

TRACEBACK_ENV = "REBALANCE_HCA_TRACEBACK"
EXIT_USER_ERROR = 2
EXIT_TRAINING_STOPPED = 1


class UserInputError(RuntimeError):
    """A problem in what the user gave (config, data, checkpoint, paths); the message says what to fix."""


@contextlib.contextmanager
def user_errors(stage: str) -> Iterator[None]:
    """Turn ValueError / KeyError / OSError / StateDictMismatchError (a checkpoint that does not fit) raised
    while ``stage`` (e.g. "building the model") into a UserInputError naming the stage; everything else
    passes through unchanged."""
    try:
        yield
    except UserInputError:
        raise
    except (ValueError, KeyError, OSError, StateDictMismatchError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise UserInputError(f"{stage}: {message}") from error


def run_tool(main: Callable[[], object]) -> None:
    """Run a tool's ``main``: a UserInputError becomes one line on stderr and exit code 2; a non-finite
    training loss (FloatingPointError, which names the iteration) or a full disk (DiskFullError, which names
    the file being written; the files written before are intact) one line and exit code 1."""
    try:
        main()
    except (UserInputError, FloatingPointError, DiskFullError) as error:
        if os.environ.get(TRACEBACK_ENV):
            raise
        tqdm.write(f"error: {error}", file=sys.stderr)  # on a line of its own, also under a progress bar
        sys.exit(EXIT_USER_ERROR if isinstance(error, UserInputError) else EXIT_TRAINING_STOPPED)

"""A bad data file met while a loader runs (a missing or damaged image, a malformed record) stops the tool
with its one-line message, also when a DataLoader worker process met it.

A worker's exception reaches the main process as a copy of its type whose message is the whole worker
traceback ("Caught DataFormatError in DataLoader worker process 0. Original Traceback ..."); the loader here
takes the original one-line message back out of it.
"""
from __future__ import annotations

from typing import Iterator

import torch

from ..utils.cli import UserInputError
from .files import DataFormatError

_WORKER_TRACEBACK = "\nOriginal Traceback"


def data_error_message(error: DataFormatError) -> str:
    """The message ``error`` was raised with, in this process or in a DataLoader worker (where it is the last
    line of the worker's traceback, after "<module>.<type>: ")."""
    text = str(error)
    if _WORKER_TRACEBACK not in text:
        return text
    last_line = text.rstrip().splitlines()[-1]
    type_prefix = f"{type(error).__name__}: "
    start = last_line.find(type_prefix)
    return last_line[start + len(type_prefix):] if start >= 0 else last_line


class DataErrorReportingLoader(torch.utils.data.DataLoader):
    """A DataLoader whose iteration turns a DataFormatError, raised here or in a worker, into a
    UserInputError with the original one-line message (which names the file)."""

    def __iter__(self) -> Iterator:
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except DataFormatError as error:
                raise UserInputError(data_error_message(error)) from error
            yield batch

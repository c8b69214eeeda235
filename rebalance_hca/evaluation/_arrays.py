"""Conversion of per-image inputs (numpy arrays or torch tensors) to checked numpy arrays."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def to_numpy(value: Any) -> np.ndarray:
    """A numpy view of a numpy array, torch tensor (any device) or nested sequence."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def get_array(record: Mapping[str, Any], key: str, where: str, ndim: int, width: int | None = None,
              integer: bool = False) -> np.ndarray:
    """``record[key]`` as a numpy array of ``ndim`` dimensions (and ``width`` columns when given).

    An empty input of any shape (e.g. ``[]``) becomes an empty array of the right shape. ``where`` names
    the record in error messages (e.g. ``"prediction of image 12"``). Raises ValueError on a missing key,
    a wrong shape or non-integer values where integers are required.
    """
    if key not in record:
        raise ValueError(f"{where}: missing field {key!r}")
    array = to_numpy(record[key])
    if array.size == 0:
        shape = (0,) if ndim == 1 else (0, width if width is not None else 0)
        return np.zeros(shape, dtype=np.int64 if integer else np.float64)
    if array.ndim != ndim or (width is not None and array.shape[1] != width):
        expected = "(n,)" if ndim == 1 else f"(n, {width if width is not None else 'm'})"
        raise ValueError(f"{where}: field {key!r} has shape {tuple(array.shape)}, expected {expected}")
    if integer:
        if array.dtype.kind == "f":
            if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
                raise ValueError(f"{where}: field {key!r} must hold integers")
        elif array.dtype.kind not in "iub":
            raise ValueError(f"{where}: field {key!r} must hold integers, got dtype {array.dtype}")
        return array.astype(np.int64)
    if array.dtype.kind not in "iufb":
        raise ValueError(f"{where}: field {key!r} must be numeric, got dtype {array.dtype}")
    return array


def check_length(array: np.ndarray, length: int, key: str, other: str, where: str) -> None:
    """Raise ValueError naming ``key`` when ``len(array)`` differs from the ``length`` of field ``other``."""
    if len(array) != length:
        raise ValueError(f"{where}: field {key!r} has {len(array)} rows but {other!r} has {length}")


def check_range(values: np.ndarray, low: int, high: int, key: str, where: str) -> None:
    """Raise ValueError naming ``key`` when a value lies outside ``[low, high)``."""
    if values.size and (values.min() < low or values.max() >= high):
        raise ValueError(f"{where}: field {key!r} has values outside [{low}, {high}): "
                         f"min {int(values.min())}, max {int(values.max())}")

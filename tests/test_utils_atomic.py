"""Atomic writes: the final file gets the permissions that open() would give it."""
import os
import stat

import pytest

from rebalance_hca.utils.atomic import atomic_write


@pytest.fixture
def umask():
    """set(mask): this process's umask for the test; the previous one comes back afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, expected_mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_file_has_the_mode_open_would_give(tmp_path, umask, mask, expected_mode):
    umask(mask)
    with open(tmp_path / "plain.txt", "w") as stream:
        stream.write("x")
    with atomic_write(str(tmp_path / "atomic.txt"), binary=False) as stream:
        stream.write("x")
    assert stat.S_IMODE(os.stat(tmp_path / "atomic.txt").st_mode) == expected_mode
    assert stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode) == expected_mode

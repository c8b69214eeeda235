import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: trains a model or runs a tool end to end (seconds to minutes); "
                                       "`bash scripts/run_tests.sh --fast` skips these")


@pytest.fixture(scope="session")
def tiny_synthvg(tmp_path_factory) -> str:
    """A 60-image SynthVG (seed 0), shared by the relation tests; returns its data root."""
    from rebalance_hca.data.synthetic import SynthVGOptions, write_synthvg

    root = tmp_path_factory.mktemp("tiny_synthvg")
    write_synthvg(str(root), SynthVGOptions(num_images=60, seed=0))
    return str(root)

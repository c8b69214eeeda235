"""Pure-Python install: no compiled extensions, no apex."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements(name: str) -> list[str]:
    return [line.strip() for line in (HERE / name).read_text().splitlines() if line.strip()]


setup(
    name="rebalance_hca",
    version="0.1.0",
    description="Scene graph generation with hybrid co-attention and predicate rebalancing (ReBalance-HCA)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["rebalance_hca", "rebalance_hca.*"]),
    install_requires=_requirements("requirements.txt"),
    extras_require={"test": _requirements("requirements-test.txt")},
)

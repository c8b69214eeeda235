"""Every key of config/defaults.py is implemented (read by the package or a tool) or refused when set to a
value other than its default (config/unsupported.py), and the loading errors name the key, the file and
the line.

How "read" is proven: a static walk over the syntax trees of rebalance_hca/ and tools/ (``read_config_keys``)
that resolves attribute chains on the config (``cfg.MODEL.RPN.NMS_THRESH``), chains on local names bound to
a config section (``rpn_cfg = cfg.MODEL.RPN`` then ``rpn_cfg.NMS_THRESH``), constant subscripts
(``cfg.INPUT["PIXEL_MEAN"]``) and whole dotted key strings (``"MODEL.RPN_ONLY"``). A key added to defaults.py
needs nothing more once code reads it; a key nothing reads must be added to ``UNSUPPORTED_KEYS``, or this
test fails naming it.
"""
from __future__ import annotations

import ast
import glob
import os

import pytest
import yaml
from yacs.config import CfgNode

from rebalance_hca.config import ConfigError, load_config
from rebalance_hca.config.defaults import _C
from rebalance_hca.config.unsupported import UNSUPPORTED_KEYS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Read through a name computed at run time (``getattr(cfg.DATASETS, mode.upper())`` in data/build.py).
READ_BY_COMPUTED_NAME = {"DATASETS.TRAIN", "DATASETS.VAL", "DATASETS.TEST"}
# Files whose mentions of keys are not reads: the defaults themselves and the list of refused keys.
NOT_READERS = {os.path.join("rebalance_hca", "config", "defaults.py"),
               os.path.join("rebalance_hca", "config", "unsupported.py")}


def leaf_keys(node: CfgNode, prefix: str = "") -> dict[str, object]:
    """Dotted key -> default value of every value (not section) of ``node``."""
    keys = {}
    for name, value in node.items():
        if isinstance(value, CfgNode):
            keys.update(leaf_keys(value, f"{prefix}{name}."))
        else:
            keys[f"{prefix}{name}"] = value
    return keys


def section_keys(node: CfgNode, prefix: str = "") -> set[str]:
    sections = set()
    for name, value in node.items():
        if isinstance(value, CfgNode):
            sections.add(f"{prefix}{name}")
            sections |= section_keys(value, f"{prefix}{name}.")
    return sections


KEYS = leaf_keys(_C)
SECTIONS = section_keys(_C)
TOP_LEVEL = set(_C.keys())


def _chain(expression: ast.expr) -> tuple[ast.expr, list[str]]:
    """(base expression, [names]) of an attribute / constant-subscript chain: ``a.B["C"].D`` -> (a, [B, C, D])."""
    names = []
    while True:
        if isinstance(expression, ast.Attribute):
            names.append(expression.attr)
            expression = expression.value
        elif (isinstance(expression, ast.Subscript) and isinstance(expression.slice, ast.Constant)
              and isinstance(expression.slice.value, str)):
            names.append(expression.slice.value)
            expression = expression.value
        else:
            return expression, names[::-1]


def _config_path(expression: ast.expr, aliases: dict[str, str]) -> str | None:
    """The dotted config path an expression denotes, if it is one: through a local alias of a section, or
    from the first top-level config name in the chain (``cfg.MODEL...``, ``self.cfg.SOLVER...``)."""
    base, names = _chain(expression)
    if isinstance(base, ast.Name) and base.id in aliases:
        return ".".join([aliases[base.id], *names])
    for position, name in enumerate(names):
        if name in TOP_LEVEL:
            return ".".join(names[position:])
    return None


class _KeyReads(ast.NodeVisitor):
    """Collects the config keys a module reads; aliases of sections are scoped per function."""

    def __init__(self) -> None:
        self.read: set[str] = set()
        self.scopes: list[dict[str, str]] = [{}]

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scopes.append(dict(self.scopes[-1]))
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            pairs = [(target, node.value)]
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(target.elts, node.value.elts))
            for name, value in pairs:
                if isinstance(name, ast.Name):
                    path = _config_path(value, self.scopes[-1]) if isinstance(value, (ast.Attribute, ast.Subscript)) \
                        else None
                    if path in SECTIONS:
                        self.scopes[-1][name.id] = path
                    else:
                        self.scopes[-1].pop(name.id, None)
                else:
                    self.visit(name)

    def _record(self, node: ast.expr) -> None:
        path = _config_path(node, self.scopes[-1])
        if path in KEYS:
            self.read.add(path)
        self.generic_visit(node)

    visit_Attribute = _record
    visit_Subscript = _record

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value in KEYS:
            self.read.add(node.value)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        """Text of an f-string (an error message naming a key) is not a read; its expressions may be."""
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                self.visit(value.value)


def read_config_keys() -> dict[str, set[str]]:
    """Dotted key -> the files (relative to the repository) that read it."""
    readers: dict[str, set[str]] = {}
    files = glob.glob(os.path.join(ROOT, "rebalance_hca", "**", "*.py"), recursive=True)
    files += glob.glob(os.path.join(ROOT, "tools", "*.py"))
    for path in files:
        relative = os.path.relpath(path, ROOT)
        if relative in NOT_READERS:
            continue
        with open(path, encoding="utf-8") as stream:
            visitor = _KeyReads()
            visitor.visit(ast.parse(stream.read(), filename=path))
        for key in visitor.read:
            readers.setdefault(key, set()).add(relative)
    return readers


READERS = read_config_keys()


def other_value(default: object) -> object:
    """A value of the default's type that differs from it."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, (int, float)):
        return default + 1
    if isinstance(default, str):
        return default + "_other"
    if isinstance(default, (tuple, list)):
        return type(default)([*default, 7])
    raise AssertionError(f"no other value for {default!r}")


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_key_is_implemented_or_refused(key, tmp_path):
    if key in UNSUPPORTED_KEYS:
        assert key not in READERS, (f"{key} is listed in config/unsupported.py but {sorted(READERS[key])} read it: "
                                    "remove it from UNSUPPORTED_KEYS")
        config_file = tmp_path / "config.yaml"
        section = {}
        node = section
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        value = other_value(KEYS[key])
        node[leaf] = list(value) if isinstance(value, tuple) else value
        config_file.write_text(yaml.safe_dump(section))
        with pytest.raises(ConfigError, match=rf"^{key} .*: this project does not implement it"):
            load_config(str(config_file))
        load_config(None, [key, repr(KEYS[key]) if not isinstance(KEYS[key], str) else KEYS[key]])
    else:
        assert key in READERS or key in READ_BY_COMPUTED_NAME, (
            f"{key} is in config/defaults.py but nothing in rebalance_hca/ or tools/ reads it: implement it, or "
            "add it to UNSUPPORTED_KEYS in config/unsupported.py (and docs/configuration.md)")


def test_the_walker_finds_reads_through_section_aliases():
    """The static walk sees the usual ways of reading a key, and not the text of an error message."""
    source = '''
def build(cfg):
    rpn_cfg, heads = cfg.MODEL.RPN, cfg.MODEL.ROI_HEADS
    mean = cfg.INPUT["PIXEL_MEAN"]
    raise ValueError(f"MODEL.RPN.MIN_SIZE {heads.NMS}")
    return rpn_cfg.NMS_THRESH, "MODEL.RPN_ONLY", cfg.SEED
'''
    visitor = _KeyReads()
    visitor.visit(ast.parse(source))
    assert visitor.read == {"MODEL.RPN.NMS_THRESH", "MODEL.ROI_HEADS.NMS", "INPUT.PIXEL_MEAN", "MODEL.RPN_ONLY",
                            "SEED"}


def test_refused_keys_are_documented():
    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as stream:
        page = stream.read()
    section = page.split("## Keys this project refuses", 1)[1].split("\n## ", 1)[0]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert documented == set(UNSUPPORTED_KEYS)


def test_refused_keys_are_listed_together_on_one_line():
    with pytest.raises(ConfigError) as error:
        load_config(None, ["SOLVER.CLIP_NORM", "0.0001", "TEST.BBOX_AUG.ENABLED", "True"])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("SOLVER.CLIP_NORM 0.0001: this project does not implement it")
    assert "SOLVER.GRAD_NORM_CLIP" in message and "TEST.BBOX_AUG.ENABLED True" in message


def test_the_repository_configs_load():
    for path in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True):
        load_config(path)


@pytest.mark.parametrize("text, line", [
    ('MODEL:\n  DEVICE: "cpu\n', 3),
    ("SOLVER:\n  STEPS: (1, 2\n  MAX_ITER: [1, 2\n", 4),
    ("SOLVER:\n\tMAX_ITER: 3\n", 2),
])
def test_yaml_syntax_error_names_the_file_and_line(tmp_path, text, line):
    config_file = tmp_path / "broken.yaml"
    config_file.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{config_file}: not valid YAML at line {line}, column \d+: ") as error:
        load_config(str(config_file))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("- MODEL\n- SOLVER\n", "expected a mapping of config keys, found a list"),
    ("MODEL: 3\n", "MODEL is a section, not a value"),
])
def test_config_file_of_the_wrong_shape_names_the_file(tmp_path, text, message):
    config_file = tmp_path / "shape.yaml"
    config_file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(config_file))


def test_type_error_gives_the_default_not_the_value_the_file_set(tmp_path):
    config_file = tmp_path / "iterations.yaml"
    config_file.write_text("SOLVER:\n  MAX_ITER: 10\n")
    with pytest.raises(ConfigError, match=r"SOLVER.MAX_ITER expects int \(default 40000\), got 'abc'"):
        load_config(str(config_file), ["SOLVER.MAX_ITER", "abc"])

"""Import a script of tools/ as a module, for tests that call its main(argv) or its helpers."""
from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as the module ``name`` (registered in sys.modules, where dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

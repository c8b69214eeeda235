"""benchmarks/check_tde_averages.py: the bias-corrected copy of a causal checkpoint's TDE moving averages."""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "check_tde_averages.py")


def _run(monkeypatch, *args: str) -> None:
    spec = importlib.util.spec_from_file_location("check_tde_averages", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", [SCRIPT, *args])
    script.main()


def test_averages_are_divided_by_the_fraction_they_reached(tmp_path, monkeypatch, capsys):
    model = {"relation_head.predictor.untreated_feat": torch.full((4,), 0.5),
             "relation_head.predictor.context.untreated_edg_feat": torch.arange(3.0),
             "relation_head.predictor.avg_post_ctx": torch.ones(2),
             "relation_head.predictor.rel_compress.weight": torch.ones(2, 2)}
    torch.save({"model": model, "iteration": 300}, tmp_path / "in.pth")
    _run(monkeypatch, "--weight", str(tmp_path / "in.pth"), "--output", str(tmp_path / "out.pth"))
    fraction = 1 - (1 - 0.0005) ** 300
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line)["average_fraction"] == pytest.approx(fraction)
    corrected = torch.load(tmp_path / "out.pth", weights_only=False)["model"]
    for key in ("relation_head.predictor.untreated_feat", "relation_head.predictor.context.untreated_edg_feat",
                "relation_head.predictor.avg_post_ctx"):
        torch.testing.assert_close(corrected[key], model[key] / fraction)
    assert torch.equal(corrected["relation_head.predictor.rel_compress.weight"], torch.ones(2, 2))


def test_a_checkpoint_without_averages_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    torch.save({"model": {"relation_head.predictor.rel_compress.weight": torch.ones(2)}, "iteration": 10},
               tmp_path / "in.pth")
    with pytest.raises(SystemExit, match="no TDE moving averages"):
        _run(monkeypatch, "--weight", str(tmp_path / "in.pth"), "--output", str(tmp_path / "out.pth"))
    assert not (tmp_path / "out.pth").exists()

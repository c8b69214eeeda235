"""Bit-exact reproducibility of CPU relation training (docs/training.md#reproducibility) and the DETERMINISTIC key.

Runs of stage 1 used to differ: with several threads, the backward of the pair gather (``head[pairs[:, 0]]``)
added the rows of objects in many pairs with atomic adds in whatever order the threads ran. How often that
showed depended on the machine's load; four threads make it likely (on two cores they also preempt each other),
so the training runs below use four. The gather's own test compares it with the single-thread sum, which the
race missed on every machine tried.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from relation_testing import ROOT, SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, mode_opts, tiny_relation_config
from tool_loading import load_tool
from rebalance_hca.modeling import build_model
from rebalance_hca.utils.cli import EXIT_USER_ERROR, run_tool
from rebalance_hca.utils.determinism import CUBLAS_DETERMINISTIC_WORKSPACE, CUBLAS_WORKSPACE_ENV, configure_determinism

RACING_THREADS = "4"
# The gather's backward runs in parallel from 32,768 elements (torch's grain size) on: at least 256 pairs
# per batch at d = 128 (the tiny SynthVG gives 260-520 pairs per 4 images).
REPRODUCIBILITY_OPTS = ["MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "128",
                        "MODEL.ROI_RELATION_HEAD.BATCH_SIZE_PER_IMAGE", "256"]


def _stage1_args(data_dir: str, output_dir: str, *overrides: str) -> list[str]:
    return ["--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS, *REPRODUCIBILITY_OPTS, *mode_opts("predcls"),
            "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"), "OUTPUT_DIR", output_dir,
            "SOLVER.MAX_ITER", "4", "SOLVER.WARMUP_ITERS", "2", "SOLVER.CHECKPOINT_PERIOD", "100",
            "SOLVER.TO_VAL", "False", "--skip-test", *overrides]


def _train_in_fresh_process(data_dir: str, output_dir: str, *overrides: str) -> dict[str, torch.Tensor]:
    environment = {**os.environ, "OMP_NUM_THREADS": RACING_THREADS, "PYTHONPATH": ROOT}
    command = [sys.executable, "tools/relation_train_net.py", *_stage1_args(data_dir, output_dir, *overrides)]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(os.path.join(output_dir, "model_final.pth"), map_location="cpu", weights_only=True)["model"]


def _differences(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: (value.double() - other[name].double()).abs().max().item()
            for name, value in reference.items() if not torch.equal(value, other[name])}


@pytest.mark.slow
def test_stage1_training_is_bit_identical_in_fresh_processes(tiny_synthvg, tmp_path):
    first = _train_in_fresh_process(tiny_synthvg, str(tmp_path / "run0"))
    for run in (1, 2):
        differences = _differences(first, _train_in_fresh_process(tiny_synthvg, str(tmp_path / f"run{run}")))
        assert not differences, f"run {run} differs from run 0: {differences}"
    deterministic = _train_in_fresh_process(tiny_synthvg, str(tmp_path / "deterministic"), "DETERMINISTIC", "True")
    assert not _differences(first, deterministic), "DETERMINISTIC True changed the CPU result"


def test_pair_gather_gradient_does_not_depend_on_the_thread_count(tiny_synthvg, tmp_path):
    cfg = tiny_relation_config(tiny_synthvg, str(tmp_path / "out"), "predcls", *REPRODUCIBILITY_OPTS)
    predictor = build_model(cfg).relation_head.predictor
    generator = torch.Generator().manual_seed(0)
    num_objects, num_pairs, hidden = 40, 1024, cfg.MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM
    edge_context = torch.randn(num_objects, hidden, generator=generator)
    pairs = torch.randint(0, num_objects, (num_pairs, 2), generator=generator)  # each object in ~50 pairs
    upstream = torch.randn(num_pairs, 2 * hidden, generator=generator)
    head_tail = []
    hook = predictor.post_emb.register_forward_hook(lambda module, inputs, output: head_tail.append(output))

    def gather_gradient(threads: int) -> torch.Tensor:
        """The gradient reaching post_emb's output (ΣN, 2d): the gather's backward alone, no matrix product."""
        torch.set_num_threads(threads)
        head_tail.clear()
        pair_rep = predictor.pair_representation(edge_context.clone().requires_grad_(), pairs)
        head_tail[0].retain_grad()
        pair_rep.backward(upstream)
        return head_tail[0].grad

    threads_before = torch.get_num_threads()
    try:
        serial = gather_gradient(1)
        for _ in range(5):
            racing = gather_gradient(int(RACING_THREADS))
            assert torch.equal(racing, serial), f"differs by up to {(racing - serial).abs().max().item():.3g}"
    finally:
        torch.set_num_threads(threads_before)
        hook.remove()


@pytest.fixture
def restores_determinism(monkeypatch):
    """torch's deterministic mode and CUBLAS_WORKSPACE_CONFIG as they were, after the test."""
    monkeypatch.setenv(CUBLAS_WORKSPACE_ENV, "")
    monkeypatch.delenv(CUBLAS_WORKSPACE_ENV)
    yield
    configure_determinism(False)


def test_deterministic_key_sets_torch_cudnn_and_cublas(restores_determinism):
    configure_determinism(True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ[CUBLAS_WORKSPACE_ENV] == CUBLAS_DETERMINISTIC_WORKSPACE
    configure_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.slow
def test_refused_operation_is_one_error_line_naming_it(tiny_synthvg, tmp_path, monkeypatch, capsys,
                                                       restores_determinism):
    from rebalance_hca.modeling.relation_head.relation_head import RelationHead

    original = RelationHead._losses

    def with_an_unpooling(self, *args, **kwargs):  # max_unpool2d has no deterministic CPU implementation
        pooled, indices = F.max_pool2d(torch.ones(1, 1, 2, 2), 2, return_indices=True)
        F.max_unpool2d(pooled, indices, 2)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RelationHead, "_losses", with_an_unpooling)
    train = load_tool("relation_train_net")
    with pytest.raises(SystemExit) as stopped:
        run_tool(lambda: train.main(_stage1_args(tiny_synthvg, str(tmp_path / "run"), "DETERMINISTIC", "True")))
    assert stopped.value.code == EXIT_USER_ERROR
    stderr = capsys.readouterr().err
    last_line = stderr.rstrip("\n").split("\n")[-1]  # a line of its own, the progress bar's line ended before it
    assert last_line.startswith("error: DETERMINISTIC True: max_unpooling2d_forward_out has no deterministic")
    assert stderr.count("error:") == 1 and "Traceback" not in stderr

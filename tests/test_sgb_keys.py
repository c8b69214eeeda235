"""The SGB keys with a history, as docs/configuration.md describes them: SOLVER.PRINT_GRAD_FREQ logs the
gradient norms as SGB's relation trainer does, TEST.RELATION.MULTIPLE_PREDS selects ng-R@100 as the
validation metric, SOLVER.CLIP_NORM is refused in favour of SOLVER.GRAD_NORM_CLIP."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList

from relation_testing import SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, mode_opts, tiny_relation_config
from tool_loading import load_tool
from rebalance_hca.config import ConfigError, load_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.engine.relation_inference import evaluate_split, predict_split
from rebalance_hca.engine.relation_runs import check_relation_config, relation_validator, validation_metric_name
from rebalance_hca.engine.trainer import Trainer, gradient_norm_report
from rebalance_hca.evaluation import SGB_PROTOCOL
from rebalance_hca.modeling import build_model
from rebalance_hca.solver.lr_scheduler import WarmupMultiStepLR
from rebalance_hca.utils.cli import UserInputError


class _TwoWeights(nn.Module):
    """loss = 3 a + 4 b: gradients 3 (on a) and 4 (on b), total norm 5."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(1))
        self.b = nn.Parameter(torch.zeros(1))
        self.frozen = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, images, targets):
        return {"loss_weights": 3 * self.a.sum() + 4 * self.b.sum()}


def test_gradient_norm_report_is_sgbs_log():
    model = _TwoWeights()
    model(None, None)["loss_weights"].backward()
    report = gradient_norm_report([(name, p) for name, p in model.named_parameters() if p.requires_grad], 2.0)
    lines = report.splitlines()
    assert lines[0] == f"---Total norm 5.00000 clip coef {2.0 / (5.0 + 1e-6):.5f}-----------------"
    assert lines[1] == f"{'b':<50s}: 4.00000, ((1,))"
    assert lines[2] == f"{'a':<50s}: 3.00000, ((1,))"
    assert lines[3] == "-------------------------------"
    assert gradient_norm_report([], None).splitlines()[0] == "---Total norm 0.00000 clip coef 1.00000-----------------"


@pytest.mark.parametrize("period, start_iter, logged_at", [(3, 0, [1, 3, 6]), (3, 4, [5, 6]), (0, 0, [])])
def test_the_trainer_logs_the_norms_at_the_first_iteration_and_every_period(caplog, period, start_iter, logged_at):
    model = _TwoWeights()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = WarmupMultiStepLR(optimizer, milestones=[100], warmup_iters=0)
    batches = [(ImageList(torch.zeros(1, 3, 4, 4), [(4, 4)]), [{}], (k,)) for k in range(6 - start_iter)]
    trainer = Trainer(model, batches, optimizer, scheduler, torch.device("cpu"), max_iter=6, start_iter=start_iter,
                      grad_clip_norm=2.0, grad_log_period=period)
    with caplog.at_level(logging.INFO, logger="rebalance_hca.engine.trainer"):
        trainer.train()
    reports = [record for record in caplog.records if record.getMessage().startswith("---Total norm")]
    assert len(reports) == len(logged_at)
    assert all("---Total norm 5.00000" in record.getMessage() for record in reports)


def test_clip_norm_is_refused_and_points_at_grad_norm_clip():
    with pytest.raises(ConfigError, match=r"SOLVER.CLIP_NORM 0.0001: this project does not implement it \(SGB "
                                          r"declares it and never reads it; its relation trainer clips with "
                                          r"SOLVER.GRAD_NORM_CLIP"):
        load_config(None, ["SOLVER.CLIP_NORM", "0.0001"])
    assert load_config(None, ["SOLVER.GRAD_NORM_CLIP", "0.0001"]).SOLVER.GRAD_NORM_CLIP == 0.0001


@pytest.mark.parametrize("multiple_preds, metric", [("False", "R@100"), ("True", "ng-R@100")])
def test_multiple_preds_selects_the_validation_metric(tiny_synthvg, tmp_path, caplog, multiple_preds, metric):
    cfg = tiny_relation_config(tiny_synthvg, str(tmp_path / "out"), "predcls", "TEST.RELATION.MULTIPLE_PREDS",
                               multiple_preds)
    assert validation_metric_name(cfg, SGB_PROTOCOL) == metric
    torch.manual_seed(0)
    model = build_model(cfg)
    loader = make_data_loader(cfg, mode="val")
    predictions = predict_split(model, loader, torch.device("cpu"), None, "predcls", 22)
    expected = evaluate_split(loader.dataset, predictions, "predcls", None, None, with_detection=False)["sgg"]
    assert expected["ng-R@100"] > expected["R@100"]  # an untrained model: the two differ
    with caplog.at_level(logging.INFO, logger="rebalance_hca.engine.relation_runs"):
        assert relation_validator(cfg, False, torch.device("cpu"))(model) == expected[metric]
    assert f"Validation {metric} {expected[metric]:.4f}" in caplog.text


def test_multiple_preds_is_refused_for_open_images_validation():
    cfg = load_config(None, ["MODEL.RELATION_ON", "True", "DATASETS.VAL", "('openimage_v6_val',)",
                             "TEST.RELATION.MULTIPLE_PREDS", "True"])
    with pytest.raises(UserInputError, match="TEST.RELATION.MULTIPLE_PREDS True selects ng-R@100"):
        check_relation_config(cfg)


@pytest.mark.slow
def test_relation_training_logs_the_norms_every_print_grad_freq(tiny_synthvg, tmp_path):
    output = tmp_path / "run"
    load_tool("relation_train_net").main([
        "--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS, *mode_opts("predcls"),
        "DATASETS.DATA_DIR", tiny_synthvg, "GLOVE_DIR", f"{tiny_synthvg}/vg", "OUTPUT_DIR", str(output),
        "SOLVER.MAX_ITER", "3", "SOLVER.TO_VAL", "False", "SOLVER.PRINT_GRAD_FREQ", "2", "--skip-test"])
    log = (output / "log.txt").read_text()
    assert log.count("---Total norm") == 2  # iterations 1 and 2
    assert "context" in log.split("---Total norm", 1)[1].split("-------------------------------")[0]

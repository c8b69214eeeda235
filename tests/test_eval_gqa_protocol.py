"""The GQA-200 protocol: the VG metrics over GQA's predicates, zero-shot triplets and head/body/tail groups from the
train split, validation on mR@100 (SHA-GCL's default). The entry-point test runs on the tiny SynthVG and only
renames the validation dataset to a GQA-200 catalog name, whose family is all the protocol choice reads."""
from __future__ import annotations

import numpy as np
import torch

from relation_testing import tiny_relation_config
from rebalance_hca.data import family_of
from rebalance_hca.engine import relation_runs
from rebalance_hca.evaluation import GQA_PROTOCOL, SGB_PROTOCOL, SGBProtocol, predicate_groups
from rebalance_hca.modeling import build_model


def test_gqa_names_choose_the_vg_protocol_selecting_on_mean_recall():
    assert [family_of(f"GQA_200_{split}").protocol for split in ("train", "val", "test")] == [GQA_PROTOCOL] * 3
    assert isinstance(GQA_PROTOCOL, SGBProtocol) and GQA_PROTOCOL.name == "gqa"
    assert GQA_PROTOCOL.uses_train_split and GQA_PROTOCOL.results_key == SGB_PROTOCOL.results_key
    evaluation = {"sgg": {"R@100": 0.5, "mR@100": 0.25}}
    assert GQA_PROTOCOL.validation_metric(evaluation) == (0.25, "Validation mR@100 0.2500  R@100 0.5000")
    assert SGB_PROTOCOL.validation_metric(evaluation)[0] == 0.5


def test_head_body_tail_of_100_predicates_follow_the_train_counts():
    counts = np.concatenate([[0], np.arange(100, 0, -1)])  # predicate 1 the most frequent
    counts[[7, 60]] = counts[[60, 7]]
    groups = predicate_groups(counts)
    assert [len(groups[name]) for name in ("head", "body", "tail")] == [33, 33, 34]
    assert groups["head"][:8] == [1, 2, 3, 4, 5, 6, 60, 8] and 7 in groups["body"]  # 7 ranks 60th


def test_validation_on_a_gqa_split_returns_mean_recall_at_100(tiny_synthvg, tmp_path, monkeypatch, caplog):
    real_name = relation_runs.dataset_name
    monkeypatch.setattr(relation_runs, "dataset_name",
                        lambda cfg, mode: "GQA_200_val" if mode == "val" else real_name(cfg, mode))
    cfg = tiny_relation_config(tiny_synthvg, str(tmp_path), "predcls", "MODEL.ROI_RELATION_HEAD.PREDICTOR",
                               "FrequencyBaselinePredictor")
    validate = relation_runs.relation_validator(cfg, distributed=False, device=torch.device("cpu"))
    caplog.set_level("INFO")
    metric = validate(build_model(cfg))
    assert 0 < metric < 1
    assert f"Validation mR@100 {metric:.4f}  R@100 " in caplog.text

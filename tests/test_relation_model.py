"""Every predictor x mode runs forward and backward on a tiny config; gradients reach exactly what trains;
stage 2 trains the clean classifier alone; bad configuration is a clear error naming the key."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from relation_testing import tiny_relation_config
from rebalance_hca.data import make_data_loader
from rebalance_hca.engine.checkpoint import Checkpointer
from rebalance_hca.engine.stages import freeze_for_stage2, load_stage1_model
from rebalance_hca.modeling import build_model

PREDICTORS = ["ReBalanceHCAPredictor", "TransformerPredictor"]
MODES = ["predcls", "sgcls", "sgdet"]


def _batch(cfg, mode: str = "train"):
    images, targets, _ = next(iter(make_data_loader(cfg, mode)))
    return images, targets


def _config(tiny_synthvg, tmp_path, mode, *extra):
    return tiny_relation_config(tiny_synthvg, str(tmp_path / "out"), mode, *extra)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("predictor", PREDICTORS)
def test_stage1_forward_backward_reaches_every_head_parameter(tiny_synthvg, tmp_path, predictor, mode):
    cfg = _config(tiny_synthvg, tmp_path, mode, "MODEL.ROI_RELATION_HEAD.PREDICTOR", predictor)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images, targets = _batch(cfg)
    losses = model(images, targets)
    assert set(losses) == {"loss_rel", "loss_refine_obj"}
    assert all(torch.isfinite(value) for value in losses.values())
    assert (losses["loss_refine_obj"] > 0) == (mode != "predcls")
    sum(losses.values()).backward()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in model.named_parameters() if name.startswith("relation_head.")}
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(p.grad is None for p in model.detector.parameters())

    model.eval()
    test_images, test_targets = _batch(cfg, "test")
    with torch.no_grad():
        predictions = model(test_images, test_targets)
    for prediction, size in zip(predictions, test_images.image_sizes):
        num_objects = len(prediction["boxes"])
        assert prediction["rel_pair_idxs"].shape == (num_objects * (num_objects - 1), 2)
        assert prediction["rel_scores"].shape[1] == cfg.MODEL.ROI_RELATION_HEAD.NUM_CLASSES
        assert torch.all(prediction["triplet_scores"][:-1] >= prediction["triplet_scores"][1:])
        assert (prediction["boxes"][:, 2] <= size[1] + 1).all() and (prediction["boxes"][:, 3] <= size[0] + 1).all()


@pytest.mark.parametrize("mode", MODES)
def test_stage2_trains_only_the_clean_classifier(tiny_synthvg, tmp_path, mode):
    stage1_cfg = _config(tiny_synthvg, tmp_path, mode)
    torch.manual_seed(0)
    stage1 = build_model(stage1_cfg)
    path = Checkpointer(stage1, save_dir=str(tmp_path / "stage1")).save("model_final", 1)
    stage2_cfg = _config(tiny_synthvg, tmp_path, mode, "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True",
                         "MODEL.PRETRAINED_MODEL_CKPT", path)
    model = build_model(stage2_cfg)
    load_stage1_model(model, path)
    trainable = freeze_for_stage2(model)
    assert trainable and all(name.startswith("predictor.clean_classifier.") for name in trainable)
    predictor = model.relation_head.predictor
    for general, clean in zip(predictor.general_classifier.state_dict().values(),
                              predictor.clean_classifier.state_dict().values()):
        assert torch.equal(general, clean)
    model.train()
    assert predictor.clean_classifier.training and predictor.clean_classifier.freq_bias.training
    assert not predictor.context.training and not model.relation_head.union_features.training
    images, targets = _batch(stage2_cfg)
    losses = model(images, targets)
    assert float(losses["loss_refine_obj"]) == 0.0
    sum(losses.values()).backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {f"relation_head.{name}" for name in trainable}


def test_transfer_classifier_maps_logits_at_test_time_only(tiny_synthvg, tmp_path):
    num_predicates = 22
    confusion = np.random.default_rng(0).integers(0, 20, (num_predicates, num_predicates)).astype(np.float32)
    np.save(tmp_path / "confusion.npy", confusion)
    cfg = _config(tiny_synthvg, tmp_path, "predcls", "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX",
                  str(tmp_path / "confusion.npy"), "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True")
    model = build_model(cfg)
    predictor = model.relation_head.predictor
    context = type("Context", (), {})()
    context.edge_context = torch.randn(3, 32)
    context.object_labels = torch.tensor([1, 2, 3])
    pairs, union = torch.tensor([[0, 1], [2, 0]]), torch.randn(2, 64)
    # eval mode, as the frozen predictor module is in stage 2's training: the training output is not mapped
    predictor.eval()
    raw = predictor.training_outputs(context, pairs, union, torch.tensor([1, 0])).relation_logits
    torch.testing.assert_close(raw, predictor.relation_logits(context, pairs, union), rtol=0, atol=0)
    mapped = predictor.eval_logits(context, pairs, union)
    torch.testing.assert_close(mapped, raw @ predictor.transfer.T)


def test_stage2_training_loss_does_not_depend_on_the_transfer_classifier(tiny_synthvg, tmp_path):
    num_predicates = 22
    confusion = np.random.default_rng(0).integers(0, 20, (num_predicates, num_predicates)).astype(np.float32)
    np.save(tmp_path / "confusion.npy", confusion)
    torch.manual_seed(0)
    stage1 = build_model(_config(tiny_synthvg, tmp_path, "predcls"))
    path = Checkpointer(stage1, save_dir=str(tmp_path / "stage1")).save("model_final", 1)
    losses = {}
    for transfer in ("False", "True"):
        cfg = _config(tiny_synthvg, tmp_path, "predcls", "MODEL.ROI_RELATION_HEAD.WITH_CLEAN_CLASSIFIER", "True",
                      "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX", str(tmp_path / "confusion.npy"),
                      "MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", transfer)
        model = build_model(cfg)
        load_stage1_model(model, path)
        freeze_for_stage2(model)
        torch.manual_seed(1)
        losses[transfer] = model.train()(*_batch(cfg))["loss_rel"]
    assert torch.equal(losses["False"], losses["True"])


@pytest.mark.parametrize("overrides, message", [
    (["MODEL.ROI_RELATION_HEAD.PREDICTOR", "MotifPredictor"], "MODEL.ROI_RELATION_HEAD.PREDICTOR 'MotifPredictor'"),
    (["MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX", "missing.npy"], "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX"),
    (["MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "30", "MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD", "4"],
     "CONTEXT_HIDDEN_DIM \\(30\\) must be divisible by MODEL.ROI_RELATION_HEAD.TRANSFORMER.NUM_HEAD \\(4\\)"),
    (["MODEL.ROI_RELATION_HEAD.NUM_CLASSES", "51"], "MODEL.ROI_RELATION_HEAD.NUM_CLASSES is 51"),
    (["MODEL.ROI_RELATION_HEAD.LOSS.TYPE", "Focal"], "MODEL.ROI_RELATION_HEAD.LOSS.TYPE"),
    (["MODEL.ROI_RELATION_HEAD.WITH_TRANSFER_CLASSIFIER", "True"], "needs a confusion matrix"),
])
def test_bad_config_is_a_clear_error(tiny_synthvg, tmp_path, overrides, message):
    cfg = _config(tiny_synthvg, tmp_path, "predcls", *overrides)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build_model(cfg)


def test_confusion_matrix_of_the_wrong_shape_is_refused(tiny_synthvg, tmp_path):
    np.save(tmp_path / "confusion.npy", np.ones((51, 51), dtype=np.float32))
    cfg = _config(tiny_synthvg, tmp_path, "predcls", "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX",
                  str(tmp_path / "confusion.npy"))
    with pytest.raises(ValueError, match=r"MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX.*\(22, 22\)"):
        build_model(cfg)


@pytest.mark.parametrize("mode", MODES)
def test_bfloat16_autocast_trains_and_predicts(tiny_synthvg, tmp_path, mode):
    """DTYPE bfloat16 runs the head under torch.amp (here on the CPU): finite losses, gradients, predictions."""
    cfg = _config(tiny_synthvg, tmp_path, mode, "MODEL.ROI_RELATION_HEAD.POOLING_ALL_LEVELS", "True")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images, targets = _batch(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(images, targets)
    assert all(value.dtype == torch.float32 and torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        predictions = model(*_batch(cfg, "test"))
    assert all(torch.isfinite(p["rel_scores"]).all() and p["rel_scores"].dtype == torch.float32 for p in predictions)

"""Scene graphs for your own images, on a tiny SynthVG with an SGDet model trained for two iterations:
tools/demo.py (JSON schema, original-frame boxes, PNG sizes, bad files, video, bad model), tools/visualize.py
(found / missed / wrong triplets by the evaluator's matching) and tools/export_model.py (TorchScript vs PyTorch)."""
from __future__ import annotations

import json
import logging
import os
import shutil

import cv2
import jsonschema
import numpy as np
import pytest
import torch
from PIL import Image

from relation_testing import SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, mode_opts, tiny_relation_config
from tool_loading import load_tool
from vg_fixture import EXIF_ORIENTATION
from rebalance_hca.data import build_dataset
from rebalance_hca.data.collate import to_image_list
from rebalance_hca.data.transforms import build_transforms
from rebalance_hca.engine import image_inference
from rebalance_hca.modeling.weights import load_model_weights
from rebalance_hca.engine.relation_inference import groundtruth_for_evaluation
from rebalance_hca.evaluation import SGGEvaluator, save_predictions
from rebalance_hca.modeling import build_model
from rebalance_hca.utils.cli import UserInputError
from rebalance_hca.visualization.scene_graph_json import SCENE_GRAPH_SCHEMA

TRAIN = load_tool("relation_train_net")
DEMO = load_tool("demo")
VISUALIZE = load_tool("visualize")
EXPORT = load_tool("export_model")


@pytest.fixture(scope="module")
def sgdet_run(tiny_synthvg, tmp_path_factory) -> dict:
    """An SGDet relation model trained for 2 iterations (random detector): its data root, config args, weights."""
    output_dir = str(tmp_path_factory.mktemp("sgdet_run"))
    config_args = ["--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS, *mode_opts("sgdet"),
                   "DATASETS.DATA_DIR", tiny_synthvg, "GLOVE_DIR", os.path.join(tiny_synthvg, "vg")]
    TRAIN.main([*config_args, "OUTPUT_DIR", output_dir, "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1",
                "SOLVER.IMS_PER_BATCH", "2", "--skip-test"])
    return {"data": tiny_synthvg, "config_args": config_args, "weights": os.path.join(output_dir, "model_final.pth")}


def _image(data_dir: str, image_id: int) -> str:
    return os.path.join(data_dir, "vg", "VG_100K", f"{image_id}.jpg")


def _demo(run: dict, input_path: str, output_dir: str, *extra: str) -> dict:
    return DEMO.main([*run["config_args"], "--input", input_path, "MODEL.WEIGHT", run["weights"],
                      "OUTPUT_DIR", output_dir, *extra])


@pytest.mark.slow
def test_demo_folder_json_schema_original_frame_pngs_and_bad_files(sgdet_run, tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    original = cv2.imread(_image(sgdet_run["data"], 1))
    assert original.shape[:2] == (208, 245)
    shutil.copy(_image(sgdet_run["data"], 1), folder / "a.jpg")
    cv2.imwrite(str(folder / "big.png"), cv2.resize(original, (980, 832)))  # 4x, same resized size
    (folder / "corrupt.jpg").write_bytes(open(_image(sgdet_run["data"], 2), "rb").read()[:300])
    (folder / "notes.txt").write_text("not an image\n")
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((3, 5, 3), dtype=np.uint8))
    output = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        result = _demo(sgdet_run, str(folder), str(output), "--batch-size", "2", "--draw-size", "320",
                       "--object-threshold", "0", "--max-triplets", "7", "--score-threshold", "0")
    assert result["written"] == ["a", "big"]
    assert [os.path.basename(source) for source, _ in result["skipped"]] == ["corrupt.jpg", "notes.txt", "tiny.png"]
    for name in ("corrupt.jpg", "notes.txt", "tiny.png"):
        assert any(name in record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)

    documents = {name: json.loads((output / f"{name}.json").read_text()) for name in ("a", "big")}
    for document in documents.values():
        jsonschema.validate(document, SCENE_GRAPH_SCHEMA)
        assert 0 < len(document["relations"]) <= 7
        scores = [relation["score"] for relation in document["relations"]]
        assert scores == sorted(scores, reverse=True)
    assert documents["big"]["image"] | {"source": ""} == {"source": "", "width": 980, "height": 832}

    # boxes come back in the original frame: the model's boxes in its 188 x 160 input, scaled by 980/188, 832/160
    cfg = tiny_relation_config(sgdet_run["data"], str(tmp_path / "check"), "sgdet")
    model = build_model(cfg).eval()
    load_model_weights(model, sgdet_run["weights"])
    image = cv2.imread(str(folder / "big.png"))
    tensor = build_transforms(cfg, is_train=False)(image, {"boxes": torch.zeros((0, 4))})[0]
    assert tuple(tensor.shape[1:]) == (160, 188)
    with torch.no_grad():
        raw = model(to_image_list([tensor], cfg.DATALOADER.SIZE_DIVISIBILITY))[0]
    expected = raw["boxes"].numpy() * np.array([980 / 188, 832 / 160] * 2)
    boxes = np.array([item["box"] for item in documents["big"]["objects"]])
    assert boxes.shape == expected.shape  # --object-threshold 0 lists every detection, in order
    np.testing.assert_allclose(boxes, expected, atol=0.01)
    assert boxes[:, [0, 2]].max() <= 980 and boxes[:, [1, 3]].max() <= 832 and boxes.min() >= 0

    # 245 x 208 drawn with its longer side 320: 320 x 272, plus a 272-pixel square graph beside it
    for name in ("a", "big"):
        assert Image.open(output / f"{name}.png").size == (592, 272)


@pytest.mark.slow
def test_demo_video_every_n_frames_and_image_list(sgdet_run, tmp_path):
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    for index in range(7):
        writer.write(np.full((64, 96, 3), 30 * index, dtype=np.uint8))
    writer.release()
    result = _demo(sgdet_run, video, str(tmp_path / "video"), "--every-n-frames", "3", "--draw-size", "0")
    assert result["written"] == ["clip_frame000000", "clip_frame000003", "clip_frame000006"]
    assert not any(name.endswith(".png") for name in os.listdir(tmp_path / "video"))
    document = json.loads((tmp_path / "video" / "clip_frame000003.json").read_text())
    assert document["image"] == {"source": f"{video}#frame=3", "width": 96, "height": 64}

    image_list = tmp_path / "list.txt"
    image_list.write_text(f"# two images\n{_image(sgdet_run['data'], 3)}\n\n{_image(sgdet_run['data'], 4)}\n")
    result = _demo(sgdet_run, str(image_list), str(tmp_path / "listed"), "--draw-size", "0")
    assert result["written"] == ["3", "4"]


@pytest.mark.slow
@pytest.mark.parametrize("overrides, message", [
    (["MODEL.WEIGHT", "/nonexistent/model_final.pth"], "checkpoint not found: /nonexistent/model_final.pth"),
    (["MODEL.ROI_RELATION_HEAD.CONTEXT_HIDDEN_DIM", "48"], "loading the model"),
    (mode_opts("predcls"), "tools/demo.py runs SGDet"),
])
def test_bad_model_fails_before_any_image_is_read(sgdet_run, tmp_path, monkeypatch, overrides, message):
    def no_reading(path, upright=False):
        raise AssertionError(f"an image was read: {path}")

    monkeypatch.setattr(image_inference, "decode_image_file", no_reading)
    with pytest.raises(UserInputError, match=message):
        _demo(sgdet_run, _image(sgdet_run["data"], 1), str(tmp_path / "out"), *overrides)


@pytest.mark.slow
def test_missing_input_and_no_usable_image_are_errors(sgdet_run, tmp_path):
    with pytest.raises(UserInputError, match="input not found"):
        _demo(sgdet_run, str(tmp_path / "absent"), str(tmp_path / "out"))
    (tmp_path / "data.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(UserInputError, match="no usable image in .*data.bin \\(not an image"):
        _demo(sgdet_run, str(tmp_path / "data.bin"), str(tmp_path / "out"))
    (tmp_path / "list.txt").write_text("absent.jpg\n")
    with pytest.raises(UserInputError, match="absent.jpg \\(file not found\\)"):
        _demo(sgdet_run, str(tmp_path / "list.txt"), str(tmp_path / "out"))


def _hand_made_prediction(groundtruth: dict, num_predicates: int) -> tuple[dict, int]:
    """GT objects as SGDet detections; pair 0 = GT relation 0 with its predicate, pairs 1 and 2 = GT relation
    1's pair and relation 0's reversed pair with a predicate that no GT relation of the image has."""
    relations = groundtruth["relations"].numpy()
    absent = min(set(range(1, num_predicates)) - set(relations[:, 2].tolist()))
    pairs = np.array([relations[0, :2], relations[1, :2], relations[0, [1, 0]]])
    rel_scores = np.full((3, num_predicates), 0.01, dtype=np.float32)
    rel_scores[0, relations[0, 2]] = rel_scores[1, absent] = rel_scores[2, absent] = 0.9
    labels = groundtruth["labels"].numpy()
    return {"boxes": groundtruth["boxes"].numpy(), "labels": labels, "scores": np.ones(len(labels), np.float32),
            "rel_pair_idxs": pairs, "rel_scores": rel_scores}, absent


@pytest.mark.slow
def test_visualize_found_missed_and_wrong_triplets(sgdet_run, tmp_path):
    cfg = tiny_relation_config(sgdet_run["data"], str(tmp_path / "cfg"), "sgdet")
    dataset = build_dataset(cfg, "test", with_transforms=False, rebalance=False)
    indices = [index for index in range(len(dataset))
               if len(groundtruth_for_evaluation(dataset, index)["relations"]) >= 2][:2]
    groundtruths = [groundtruth_for_evaluation(dataset, index) for index in indices]
    num_predicates = len(dataset.ind_to_predicates)
    predictions = [_hand_made_prediction(groundtruth, num_predicates)[0] for groundtruth in groundtruths]

    evaluator = SGGEvaluator("sgdet", num_predicates, recall_ks=(50,))
    match = evaluator.match_image(groundtruths[0], predictions[0])
    relations = groundtruths[0]["relations"].numpy()
    assert match["pair_matched"].tolist() == [True, False, False]
    assert match["gt_rank"][0] == 0
    other_predicate = relations[:, 2] != relations[0, 2]
    assert (match["gt_rank"][other_predicate] == -1).all()
    assert len(evaluator.state()["image_ids"]) == 0  # matching adds nothing to the evaluator

    path = str(tmp_path / "predictions.npz")
    save_predictions(path, predictions, "sgdet", num_predicates, groundtruths=groundtruths, image_ids=indices,
                     metadata={"dataset_size": len(dataset)})
    output = str(tmp_path / "grid.png")
    config_args = [*sgdet_run["config_args"], "OUTPUT_DIR", str(tmp_path / "cfg")]
    VISUALIZE.main([*config_args, "--predictions", path, "--index", *map(str, indices), "--output", output,
                    "--panel-size", "200"])
    assert Image.open(output).size == (600, 400)  # three 200-pixel panels a row, two rows

    with pytest.raises(UserInputError, match="no prediction for index"):
        VISUALIZE.main([*config_args, "--predictions", path, "--index", str(len(dataset) - 1), "--output", output])


@pytest.mark.slow
def test_export_agrees_with_pytorch_and_refuses_other_shapes(sgdet_run, tmp_path):
    output = str(tmp_path / "relation_model.pt")
    args = [*sgdet_run["config_args"], "MODEL.WEIGHT", sgdet_run["weights"], "MODEL.ROI_RELATION_HEAD.USE_GT_BOX",
            "True", "OUTPUT_DIR", str(tmp_path / "export"), "--output", output, "--image-size", "245", "208",
            "--num-objects", "5", "--num-checks", "2"]
    result = EXPORT.main(args)
    assert result["passed"] and result["mode"] == "sgcls"
    assert result["shape"] == {"height": 160, "width": 188, "padded_height": 160, "padded_width": 192,
                               "num_objects": 5, "num_classes": 23}
    assert max(result["max_differences"].values()) <= 1e-5
    exported = torch.jit.load(output)
    image, boxes, logits = torch.zeros(1, 3, 160, 192), torch.tensor([[0.0, 0, 20, 20]] * 6), torch.zeros(6, 23)
    with pytest.raises(Exception, match="exported for"):
        exported(image, boxes, logits)
    outputs = exported(image, boxes[:5], logits[:5])
    assert outputs[3].shape == (20, 2) and outputs[4].shape == (20, 22)

    with pytest.raises(UserInputError, match="SGDet cannot be exported"):
        EXPORT.main([*args[:-len(["--num-checks", "2"])], "MODEL.ROI_RELATION_HEAD.USE_GT_BOX", "False"])


def test_scene_graph_document_keeps_the_top_triplets_and_their_objects():
    from rebalance_hca.visualization.scene_graph_json import SelectionOptions, scene_graph_document

    rel_scores = np.zeros((4, 3), dtype=np.float32)
    rel_scores[:, 1:] = [[0.8, 0.2], [0.3, 0.7], [0.9, 0.1], [0.5, 0.5]]
    prediction = {"boxes": np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 2, 3, 4]], dtype=np.float32),
                  "labels": np.array([1, 2, 1]), "scores": np.array([0.9, 0.2, 0.5], dtype=np.float32),
                  "rel_pair_idxs": np.array([[0, 2], [2, 0], [1, 2], [0, 1]]), "rel_labels": np.array([1, 2, 1, 1]),
                  "rel_scores": rel_scores, "triplet_scores": np.array([0.36, 0.315, 0.09, 0.09], dtype=np.float32)}
    document = scene_graph_document(prediction, "x.jpg", 30, 40, ["bg", "cat", "dog"], ["bg", "on", "near"], "w.pth",
                                    SelectionOptions(max_triplets=3, score_threshold=0.1, object_threshold=0.6))
    jsonschema.validate(document, SCENE_GRAPH_SCHEMA)
    # triplets with score >= 0.1: the first two; objects: 0 (score 0.9 >= 0.6) and 2 (in a kept triplet)
    assert [item["box"] for item in document["objects"]] == [[0, 0, 10, 10], [1, 2, 3, 4]]
    assert [(r["subject"], r["predicate"], r["object"]) for r in document["relations"]] == [(0, "on", 1),
                                                                                             (1, "near", 0)]
    assert [r["predicate_score"] for r in document["relations"]] == pytest.approx([0.8, 0.7])
    assert [r["score"] for r in document["relations"]] == pytest.approx([0.36, 0.315])
    with pytest.raises(ValueError, match="score_threshold"):
        SelectionOptions(score_threshold=1.5)


def test_photos_are_read_upright_as_a_viewer_shows_them(tmp_path):
    """An Orientation=6 photo stored 64 wide x 48 high is shown (and processed) 48 wide x 64 high."""
    pixels = np.zeros((48, 64, 3), dtype=np.uint8)
    pixels[:, :8] = 255  # a white band on the stored left edge: at the top once rotated 90° clockwise
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", exif=exif)
    [item] = list(image_inference.ImageSource(str(tmp_path)))
    assert item.image.shape == (64, 48, 3)
    assert item.image[:4].mean() > 200 and item.image[-4:].mean() < 50

"""The journeys users walk, end to end, as they walk them (issue 21): every step is the command line
in a subprocess, on data shaped as users have it, and every step's output is checked.

(a) a folder of photos (PNG and JPEG, one broken file) -> fine-tune from a keras.applications .h5
    -> evaluate on the held-out photos -> export float32 and int8 -> MediaPipe's ImageClassifier
    on both files -> predict;
(b) a partial CIFAR-10 copy in the official python layout -> train mobilenetv2_lgc ->
    evaluate.py --convert -> export int8 -> MediaPipe;
(c) an .npz file -> train -> evaluate -> predict;
(d) timm's MobileNetV4 weights (a .safetensors file) -> fine-tune on photos -> evaluate -> export
    int8 -> MediaPipe -> predict.

Small on purpose: width 0.35-0.5, 32x32 inputs, one or two short epochs.
"""

import csv
import json
import math

import numpy as np
import pytest

from userdata import (CLASSES, MEDIAPIPE_INSTALL, REPO, assert_ok, class_images, error_lines, require_module,
                      run_cli, write_cifar10_python, write_npz, write_photos)

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STANDIN_V2 = REPO / "tests" / "fixtures" / "standin" / "mobilenet_v2_0.35_32_no_top.h5"
QUICK_EXPORT = ("--latency-runs", "5", "--parity-images", "8", "--calibration-images", "16")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def log_rows(run_dir):
    with open(run_dir / "log.csv") as f:
        return list(csv.DictReader(f))


def mediapipe_classify(model_path, image_paths):
    """[(top-1 name, scores summing to 1)] of MediaPipe's ImageClassifier on image files, as an app runs it."""
    mp = require_module("mediapipe", MEDIAPIPE_INSTALL)
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model_path)), max_results=-1)
    results = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in image_paths:
            categories = classifier.classify(mp.Image.create_from_file(str(path))).classifications[0].categories
            results.append((categories[0].category_name, sum(c.score for c in categories)))
    return results


def predictions(json_path):
    """{image file name: [(label, probability), ...]} of a predict --json file."""
    return {entry["image"].rsplit("/", 1)[-1]: [(k["label"], k["probability"]) for k in entry["top_k"]]
            for entry in read_json(json_path)}


def assert_same_predictions(first, second, tolerance=1e-4):
    assert first.keys() == second.keys()
    for image in first:
        assert [label for label, _ in first[image]] == [label for label, _ in second[image]], image
        np.testing.assert_allclose([p for _, p in first[image]], [p for _, p in second[image]], atol=tolerance)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("journey_a") / "photos", per_class=15, varied_sizes=True)


def new_photos(folder, per_class=2, seed=11):
    """folder/<class>_img_<i>.png|jpg: new photos of each class (never trained on, varied sizes). Returns the paths."""
    new = write_photos(folder / "classes", per_class=per_class, bad_file=False, seed=seed, varied_sizes=True)
    paths = []
    for path in sorted(new.rglob("img_*")):
        paths.append(path.rename(folder / f"{path.parent.name}_{path.name}"))
    return paths


def class_of(path):
    return path.name.split("_")[0]


def test_a_photos_finetune_evaluate_export_mediapipe_predict(photos, tmp_path):
    weights = STANDIN_V2  # a _no_top .h5 that learned shapes (benchmarks/standin_backbone.py), as ImageNet's file
    run = tmp_path / "run"
    trained = assert_ok(run_cli(
        "train.py", "--preset", "finetune", "--model", "mobilenetv2", "--weights", weights, "--width", "0.35",
        "--data-dir", photos, "--run-dir", run, "--epochs", "4", "--batch-size", "6",
        "--set", "finetune.head_epochs=1", "--set", "model.input_size=32", "--set", "optimizer.lr=0.01",
        "--verbose", "0"))
    assert "done: 4 epochs" in trained.stdout and "(chance 0.3333, 3 classes)" in trained.stdout
    skipped = [line for line in error_lines(trained) if "broken.jpg" in line]
    assert len(skipped) == 1 and skipped[0].startswith("warning: "), trained.stderr  # one line, no source path
    config = read_json(run / "config.json")
    assert config["data"]["dataset"] == "folder" and config["data"]["validation_fraction"] == 0.2
    rows = log_rows(run)
    assert len(rows) == 4 and "val_cross_entropy" in rows[0]
    assert float(rows[0]["learning_rate"]) == pytest.approx(0.01)  # phase 1 logs the rate it trained with
    assert float(rows[1]["learning_rate"]) == pytest.approx(0.001)  # phase 2: finetune.lr_factor 0.1

    # evaluate: no --dataset, the run's own held-out photos (round(15 * 0.2) = 3 of each class)
    report_path = tmp_path / "evaluate.json"
    evaluated = assert_ok(run_cli("evaluate.py", run, "--json", report_path))
    report = read_json(report_path)
    assert report["num_images"] == 9 and report["dataset"] == "folder"
    assert "held out" in evaluated.stdout and "warning" not in evaluated.stdout
    assert [row["label"] for row in report["per_class"]] == list(CLASSES)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum(axis=1).tolist() == [3, 3, 3]
    assert report["top1"] >= 7 / 9, matrix  # it learned: chance is 1/3
    logged = float(log_rows(run)[-1]["val_cross_entropy"])  # the log and evaluate report one cross-entropy
    best = max(log_rows(run), key=lambda row: float(row["val_accuracy"]))
    assert report["loss"] == pytest.approx(float(best["val_cross_entropy"]), rel=1e-3) or \
        report["loss"] == pytest.approx(logged, rel=1e-3)

    exported = {}
    for mode in ("none", "int8"):
        path = tmp_path / f"photos_{mode}.tflite"
        result = assert_ok(run_cli("export_tflite.py", run, "--quantize", mode, "-o", path, *QUICK_EXPORT))
        assert path.is_file() and (tmp_path / f"photos_{mode}.tflite.json").is_file()
        exported[mode] = path
    sidecar = read_json(str(exported["int8"]) + ".json")
    assert sidecar["report"]["calibration"].startswith("16 images") and "photos" in sidecar["report"]["calibration"]
    assert sidecar["report"]["parity"]["top1_agreement"] >= 0.8  # the int8 file against the Keras model

    # predict on new photos of every class: the run and its float32 file agree and name the classes;
    # the broken photo is one line and the others are scored
    held_out = new_photos(tmp_path / "new")
    images = [*held_out, photos / CLASSES[0] / "broken.jpg"]
    outputs = {}
    for name, model in (("run", run), ("float32", exported["none"])):
        json_path = tmp_path / f"predict_{name}.json"
        result = run_cli("-m", "mobilenets.commands.predict", model, *images, "--top-k", "2", "--json", json_path)
        assert result.returncode == 1, result.stderr
        lines = error_lines(result)
        assert len(lines) == 1 and "broken.jpg" in lines[0], result.stderr
        outputs[name] = {entry["image"]: entry["top_k"][0]["label"] for entry in read_json(json_path)}
        assert len(outputs[name]) == len(held_out)
    assert_same_predictions(predictions(tmp_path / "predict_run.json"), predictions(tmp_path / "predict_float32.json"))
    right = sum(outputs["run"][str(path)] == class_of(path) for path in held_out)
    assert right >= 5, outputs["run"]  # of 6 new photos

    # last, MediaPipe reads both files as an app does: the photos' class names, probabilities that sum to 1,
    # mostly the float32 file's answers (MediaPipe resizes the whole photo; predict crops it as evaluation does)
    for mode, path in exported.items():
        answers = mediapipe_classify(path, held_out)
        for name, total in answers:
            assert name in CLASSES and total == pytest.approx(1.0, abs=0.02)
        if mode == "none":
            agree = sum(name == outputs["float32"][str(image)] for image, (name, _) in zip(held_out, answers))
            assert agree >= 4, answers


def write_class_photos(folder, labels, seed=7):
    """folder/class_<label>_<i>.png: one new image of each label in `labels` (never trained on). Returns the paths."""
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    rng, paths = np.random.default_rng(seed), []
    for i, label in enumerate(labels):
        paths.append(folder / f"class_{label}_{i}.png")
        paths[-1].write_bytes(tf.io.encode_png(class_images(label, 1, 32, rng)[0]).numpy())
    return paths


def test_b_partial_cifar10_lgc_convert_export_int8_mediapipe(tmp_path):
    data = write_cifar10_python(tmp_path / "cifar10", per_batch=100, test=50)  # data_batch_1 and 2 of 5
    run = tmp_path / "run"
    trained = assert_ok(run_cli(
        "train.py", "--model", "mobilenetv2_lgc", "--dataset", "cifar10", "--data-dir", data, "--run-dir", run,
        "--width", "0.35", "--epochs", "4", "--batch-size", "20", "--lr", "0.05", "--verbose", "0"))
    assert "done: 4 epochs" in trained.stdout and "(chance 0.1, 10 classes)" in trained.stdout
    assert "data_batch_3" in trained.stderr  # the missing batches are named, once
    assert len(log_rows(run)) == 4

    plain, converted = tmp_path / "plain.json", tmp_path / "converted.json"
    assert_ok(run_cli("evaluate.py", run, "--json", plain))
    result = assert_ok(run_cli("evaluate.py", run, "--convert", "--json", converted))
    assert (run / "converted.keras").is_file() and "converted" in result.stdout
    plain, converted = read_json(plain), read_json(converted)
    assert plain["num_images"] == converted["num_images"] == 50  # CIFAR's test split, as the seeds report
    assert plain["top1"] >= 0.5, plain["per_class"]  # it learned: chance is 0.1
    assert converted["top1"] == pytest.approx(plain["top1"]) and converted["loss"] == pytest.approx(plain["loss"], 1e-4)
    assert [row["label"] for row in converted["per_class"]] == CIFAR10_NAMES

    path = tmp_path / "lgc_int8.tflite"
    assert_ok(run_cli("export_tflite.py", run, "--quantize", "int8", "-o", path, *QUICK_EXPORT))
    assert read_json(str(path) + ".json")["report"]["calibration"].startswith("16 images of cifar10")

    images = write_class_photos(tmp_path / "new", [0, 2, 4, 6, 8, 9])
    outputs = {}  # predict with the run (Keras) and with the int8 file (LiteRT): the classes of new images
    for name, model in (("run", run), ("int8", path)):
        json_path = tmp_path / f"predict_{name}.json"
        assert_ok(run_cli("-m", "mobilenets.commands.predict", model, *images, "--top-k", "1", "--json", json_path))
        outputs[name] = {image: top[0][0] for image, top in predictions(json_path).items()}
    truth = {image.name: CIFAR10_NAMES[int(image.name.split("_")[1])] for image in images}
    assert sum(outputs["run"][image] == label for image, label in truth.items()) >= 3, outputs["run"]  # chance: 0.6
    assert sum(outputs["int8"][image] == outputs["run"][image] for image in truth) >= 5, outputs

    # last, MediaPipe's ImageClassifier reads the int8 file as an app does: the file's own answers
    for image, (name, total) in zip(images, mediapipe_classify(path, images)):
        assert name == outputs["int8"][image.name] and total == pytest.approx(1.0, abs=0.02)


def test_c_npz_train_with_defaults_evaluate_predict(tmp_path):
    """(c) an .npz file trained with the defaults (no split, batch or learning-rate settings): it holds out
    15% (the README's npz row), fits the batch to its 76 training images, learns, and predicts new images."""
    data = write_npz(tmp_path / "arrays.npz", n=90, size=32, num_classes=3)
    run = tmp_path / "run"
    trained = assert_ok(run_cli(
        "train.py", "--model", "mobilenetv2", "--dataset", "npz", "--data-dir", data, "--run-dir", run,
        "--width", "0.35", "--epochs", "4", "--verbose", "0"))
    assert "76 training images: batch 16 instead of 64" in trained.stdout
    config = read_json(run / "config.json")
    assert config["data"]["validation_fraction"] == 0.15 and config["schedule"]["batch_size"] == 16
    assert "chance 0.3333, 3 classes" in trained.stdout and "at chance" not in trained.stdout
    report_path = tmp_path / "evaluate.json"
    evaluated = assert_ok(run_cli("evaluate.py", run, "--json", report_path))
    report = read_json(report_path)
    assert report["num_images"] == 14 and "held out" in evaluated.stdout  # round(90 * 0.15)
    assert report["top1"] >= 12 / 14, report["per_class"]  # chance is 1/3
    assert "warning" not in evaluated.stdout

    import tensorflow as tf

    rng = np.random.default_rng(7)  # new images of each class, never seen
    images = []
    for label in range(3):
        for i, image in enumerate(class_images(label, 2, 32, rng)):
            images.append(tmp_path / f"class_{label}_{i}.png")
            images[-1].write_bytes(tf.io.encode_png(image).numpy())
    json_path = tmp_path / "predict.json"
    result = assert_ok(run_cli("-m", "mobilenets.commands.predict", run, *images, "--top-k", "3", "--json", json_path))
    found = predictions(json_path)
    assert sorted(found) == sorted(image.name for image in images)
    for name, top in found.items():
        assert sorted(label for label, _ in top) == ["class_0", "class_1", "class_2"]
        assert sum(p for _, p in top) == pytest.approx(1.0, abs=1e-4)
    right = sum(top[0][0] == f"class_{name.split('_')[1]}" for name, top in found.items())
    assert right >= 5, found  # of 6 new images
    assert "class_0_0.png" in result.stdout


STANDIN = REPO / "tests" / "fixtures" / "standin"
STANDIN_V4 = STANDIN / "mobilenetv4_conv_small" / "model.safetensors"


def test_d_timm_mobilenetv4_finetune_evaluate_export_int8_mediapipe_predict(photos, tmp_path):
    """(d) timm's MobileNetV4-Conv-S weights -> fine-tune on photos -> evaluate -> int8 export calibrated
    on the photos -> predict -> MediaPipe. A timm-layout checkpoint that learned shapes (width 0.25, with its
    config.json: 32x32, ImageNet mean/std; benchmarks/standin_backbone.py) stands in for the hub's file."""
    run = tmp_path / "run"
    trained = assert_ok(run_cli(
        "train.py", "--preset", "finetune", "--model", "mobilenetv4_conv_small", "--weights", STANDIN_V4,
        "--width", "0.25", "--data-dir", photos, "--dataset", "folder", "--run-dir", run, "--epochs", "6",
        "--batch-size", "6", "--set", "finetune.head_epochs=1", "--set", "optimizer.lr=0.01", "--verbose", "0"))
    assert f"weights from {STANDIN_V4} (new classifier)" in trained.stdout and "done: 6 epochs" in trained.stdout
    spec = read_json(run / "model.json")  # what evaluate, export and predict rebuild: the model timm's weights need
    assert (spec["normalization"], spec["bn_epsilon"], spec["padding"], spec["input_shape"]) == (
        "imagenet", 1e-5, "symmetric", [32, 32, 3])
    assert read_json(run / "config.json")["model"]["input_size"] == 32  # the checkpoint's, for the data too

    report_path = tmp_path / "evaluate.json"
    assert "held out" in assert_ok(run_cli("evaluate.py", run, "--json", report_path)).stdout
    report = read_json(report_path)
    assert report["num_images"] == 9 and [row["label"] for row in report["per_class"]] == list(CLASSES)
    assert report["top1"] >= 6 / 9, report["confusion_matrix"]  # it learned: chance is 1/3 (3 of 9)

    int8 = tmp_path / "timm_int8.tflite"
    assert_ok(run_cli("export_tflite.py", run, "--quantize", "int8", "-o", int8, *QUICK_EXPORT))
    sidecar = read_json(str(int8) + ".json")["report"]
    assert sidecar["calibration"].startswith("16 images") and "photos" in sidecar["calibration"]
    assert sidecar["parity"]["top1_agreement"] >= 0.75

    held_out = new_photos(tmp_path / "new")
    outputs = {}  # predict: the run (Keras) and its int8 file name the same class, with about the same confidence
    for name, model in (("run", run), ("int8", int8)):
        json_path = tmp_path / f"predict_{name}.json"
        assert_ok(run_cli("-m", "mobilenets.commands.predict", model, *held_out, "--top-k", "1", "--json", json_path))
        outputs[name] = predictions(json_path)
    assert_same_predictions(outputs["run"], outputs["int8"], tolerance=0.1)  # same classes; int8 moves probabilities
    assert sum(outputs["run"][path.name][0][0] == class_of(path) for path in held_out) >= 4, outputs["run"]

    for image, (name, total) in zip(held_out, mediapipe_classify(int8, held_out)):  # last: MediaPipe, as an app
        assert name == outputs["int8"][image.name][0][0] and total == pytest.approx(1.0, abs=0.02)

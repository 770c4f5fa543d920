"""mobilenets-predict: a run on a folder of photos and its float32 .tflite name the photos'
classes with the same probabilities, which are the softmax of the model's logits on the image
center-cropped as evaluation crops it; a bad image is one stderr line and the others are scored."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from hparams import apply_overrides, default_preset_for_model
from mobilenets import build_model, runs
from mobilenets.commands import predict
from mobilenets.deploy.export import export
from mobilenets.evaluation import save_keras_model
from userdata import CLASSES, assert_ok, encode, error_lines, run_cli, write_photos

CROP_FRACTION = 0.875  # the run's: not the 1.0 a 32x32 model gets by default, so it must be read from the run
SIZE = 32


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("predict")


@pytest.fixture(scope="module")
def photos(workdir):
    """The class folders (40x48 photos and one broken.jpg), plus a grayscale PNG and a truncated JPEG."""
    root = write_photos(workdir / "photos")
    gray = np.asarray(tf.image.rgb_to_grayscale(tf.io.decode_png((root / "rose" / "img_002.png").read_bytes())))
    (workdir / "gray.png").write_bytes(encode(gray, "png"))
    jpeg = (root / "tulip" / "img_001.jpg").read_bytes()
    (workdir / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    return root


@pytest.fixture(scope="module")
def good_images(photos, workdir):
    images = [photos / name / f"img_{i:03d}.{fmt}" for name in CLASSES for i, fmt in ((0, "png"), (1, "jpg"))]
    return [str(path) for path in images + [workdir / "gray.png"]]


@pytest.fixture(scope="module")
def bad_images(photos, workdir):
    return [str(photos / CLASSES[0] / "broken.jpg"), str(workdir / "truncated.jpg"), str(workdir / "missing.png")]


def write_run(run_dir, model, spec, photos):
    """A run directory as train.py leaves one for --dataset folder --data-dir photos: model.json,
    config.json, a checkpoint."""
    runs.save_model_spec(str(run_dir), **spec)
    config = apply_overrides(default_preset_for_model(spec["name"]), [
        "data.dataset=folder", f"data.data_dir={photos}", f"data.eval_crop_fraction={CROP_FRACTION}",
        f"model.input_size={SIZE}", f"model.width_multiplier={spec['width_multiplier']}"])
    config.save(str(run_dir / "config.json"))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run_dir / "checkpoints"), 1).save()


def fit_classifier(model, photos):
    """A least-squares linear probe on the photos' pooled features: a model that tells the classes
    apart with confident, input-dependent probabilities, in a second."""
    paths = sorted(str(path) for name in CLASSES for path in (photos / name).glob("img_*"))
    images = np.stack([center_crop_by_hand(path, CROP_FRACTION) for path in paths])
    labels = [CLASSES.index(pathlib.Path(path).parent.name) for path in paths]
    features = keras.Model(model.input, model.get_layer("pool").output)(images).numpy()
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    # targets 4 for the class, and 0, 0.5, 1 for the others: no near-ties for the order of the top k
    targets = 4.0 * np.eye(len(CLASSES))[labels] + 0.5 * np.arange(len(CLASSES))
    solution = np.linalg.lstsq(features, targets, rcond=None)[0]
    model.get_layer("logits").set_weights([solution[:-1], solution[-1]])


@pytest.fixture(scope="module")
def run_dir(photos, workdir):
    spec = dict(name="mobilenetv2", num_classes=len(CLASSES), config="cifar", width_multiplier=0.35,
                input_shape=(SIZE, SIZE, 3))
    model = build_model(**spec)
    fit_classifier(model, photos)
    run_dir = workdir / "run"
    write_run(run_dir, model, spec, photos)
    return run_dir


@pytest.fixture(scope="module")
def tflite(run_dir, workdir):
    path = workdir / "model.tflite"
    export(run_dir, path, parity_images=2, latency_runs=1)
    return path


def predict_cli(model, images, workdir, name):
    """(CompletedProcess, the --json file's predictions) of the CLI; images in the given order."""
    json_path = workdir / f"{name}.json"
    result = run_cli("-m", "mobilenets.commands.predict", model, *images, "--json", json_path)
    assert json_path.exists(), f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result, json.loads(json_path.read_text())


@pytest.fixture(scope="module")
def run_predictions(run_dir, good_images, bad_images, workdir):
    """Bad images among the good ones: after the first, in the middle and at the end."""
    images = [good_images[0], bad_images[0], *good_images[1:4], bad_images[1], *good_images[4:], bad_images[2]]
    return predict_cli(run_dir, images, workdir, "run")


@pytest.fixture(scope="module")
def tflite_predictions(tflite, good_images, workdir):
    return predict_cli(tflite, good_images, workdir, "tflite")


def test_run_and_its_tflite_agree(run_predictions, tflite_predictions, good_images):
    (_, from_run), (result, from_tflite) = run_predictions, tflite_predictions
    assert_ok(result)
    assert [p["image"] for p in from_run] == [p["image"] for p in from_tflite] == good_images
    for keras_prediction, tflite_prediction in zip(from_run, from_tflite):
        keras_top, tflite_top = keras_prediction["top_k"], tflite_prediction["top_k"]
        assert [e["label"] for e in keras_top] == [e["label"] for e in tflite_top]
        np.testing.assert_allclose([e["probability"] for e in keras_top],
                                   [e["probability"] for e in tflite_top], atol=1e-4, rtol=0)


def test_labels_are_the_photo_class_names_and_top_k_is_clamped_to_them(run_predictions, tflite_predictions, photos):
    # default --top-k 5 with 3 classes: every class, once, best first; the photos' own class first
    for _, predictions in (run_predictions, tflite_predictions):
        for prediction in predictions:
            folder = pathlib.Path(prediction["image"]).parent
            if folder.parent == photos:
                assert prediction["top_k"][0]["label"] == folder.name, prediction
            top = prediction["top_k"]
            assert sorted(e["label"] for e in top) == sorted(CLASSES)
            assert [CLASSES[e["index"]] for e in top] == [e["label"] for e in top]
            probabilities = [e["probability"] for e in top]
            assert probabilities == sorted(probabilities, reverse=True)
            assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def center_crop_by_hand(path, fraction):
    """The image decoded by its own format, central square of `fraction` of its shorter side, resized."""
    data = pathlib.Path(path).read_bytes()
    image = (tf.io.decode_png if path.endswith(".png") else tf.io.decode_jpeg)(data, channels=3).numpy()
    height, width = image.shape[:2]
    side = round(min(height, width) * fraction)
    top, left = (height - side) // 2, (width - side) // 2
    return tf.image.resize(image[top : top + side, left : left + side].astype(np.float32), (SIZE, SIZE)).numpy()


def test_probabilities_are_the_softmax_of_the_keras_logits_on_the_center_crop(run_dir, run_predictions, good_images):
    model = runs.load_run(str(run_dir), "best")
    _, predictions = run_predictions

    def logits(fraction):
        return model(np.stack([center_crop_by_hand(p, fraction) for p in good_images]), training=False).numpy()

    expected = tf.nn.softmax(logits(CROP_FRACTION)).numpy()
    for prediction, row in zip(predictions, expected):
        for entry in prediction["top_k"]:
            assert entry["probability"] == pytest.approx(row[entry["index"]], abs=1e-5)
    # the crop is not a no-op on these 40x48 photos: the uncropped square gives other logits
    assert np.max(np.abs(logits(1.0) - logits(CROP_FRACTION))) > 1e-3


def test_stdout_lists_what_the_json_holds(run_predictions):
    result, predictions = run_predictions
    expected = [f"{p['image']}: " + ", ".join(f"{e['label']} {e['probability']:.3f}" for e in p["top_k"])
                for p in predictions]
    assert result.stdout.splitlines() == expected


def test_each_bad_image_is_one_stderr_line_and_the_others_are_scored(run_predictions, good_images, bad_images):
    result, predictions = run_predictions
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == len(bad_images), result.stderr
    for line, path in zip(lines, bad_images):
        assert line.startswith(f"error: {path}: cannot decode"), line
    assert [p["image"] for p in predictions] == good_images


def test_top_k_and_batches_of_images(run_dir, run_predictions, good_images, workdir, monkeypatch, capfd):
    # --top-k 2 keeps the first two classes; images read two at a time give the same predictions
    monkeypatch.setattr(predict, "BATCH_SIZE", 2)
    json_path = workdir / "top2.json"
    assert predict.main([str(run_dir), *good_images, "--top-k", "2", "--json", str(json_path)]) == 0
    predictions = json.loads(json_path.read_text())
    assert capfd.readouterr().out.splitlines() == [predict.format_prediction(p) for p in predictions]
    assert [p["image"] for p in predictions] == good_images
    for prediction, all_classes in zip(predictions, run_predictions[1]):
        top, expected = prediction["top_k"], all_classes["top_k"][:2]
        assert [(e["label"], e["index"]) for e in top] == [(e["label"], e["index"]) for e in expected]
        np.testing.assert_allclose([e["probability"] for e in top], [e["probability"] for e in expected], atol=1e-6)


def test_a_directory_scores_every_image_in_it(run_dir, run_predictions, photos, workdir, capfd):
    """`mobilenets-predict RUN photos/rose`: the folder's images, sorted, as if listed one by one."""
    folder = photos / "rose"
    listed = sorted(str(path) for path in folder.iterdir())
    json_path = workdir / "folder.json"
    assert predict.main([str(run_dir), str(folder), "--json", str(json_path)]) == 0
    by_folder = json.loads(json_path.read_text())
    assert [p["image"] for p in by_folder] == listed
    json_path = workdir / "files.json"
    assert predict.main([str(run_dir), *listed, "--json", str(json_path)]) == 0
    assert json.loads(json_path.read_text()) == by_folder
    empty = workdir / "empty_folder"
    empty.mkdir(exist_ok=True)
    capfd.readouterr()
    assert predict.main([str(run_dir), str(empty)]) == 2
    assert capfd.readouterr().err.strip() == f"error: {empty} holds no image files (.jpg, .png, .bmp, .gif, .webp); " \
                                             "pass images or a folder of them"


@pytest.mark.parametrize("flags, message", [
    (["--top-k", "0"], "--top-k must be a positive integer, got '0'"),
    (["--top-k", "two"], "--top-k must be a positive integer, got 'two'"),
    (["--num-threads", "-1"], "--num-threads must be a positive integer"),
])
def test_bad_option_is_a_one_line_error(run_dir, good_images, flags, message, capfd):
    assert predict.main([str(run_dir), good_images[0], *flags]) == 2
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith(f"error: {message}"), captured.err


def test_bad_model_is_a_one_line_error(workdir, good_images, capfd):
    for model, message in ((workdir / "nowhere", "does not exist"), (good_images[0], "is not something to evaluate")):
        assert predict.main([str(model), good_images[0]]) == 2
        captured = capfd.readouterr()
        lines = captured.err.strip().splitlines()
        assert captured.out == "" and len(lines) == 1 and lines[0].startswith(f"error: {model} "), captured.err
        assert message in lines[0]


def test_run_whose_photos_moved_predicts_with_class_numbers(run_dir, workdir):
    moved = workdir / "moved_run"
    shutil.copytree(run_dir, moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"]["data_dir"] = str(workdir / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    classifier = predict.load_classifier(moved)
    assert classifier.labels == ["class_0", "class_1", "class_2"] and "gone" in classifier.labels_note
    assert classifier.crop_fraction == CROP_FRACTION


def test_saved_model_inside_a_run_takes_its_labels_and_crop(run_dir, workdir):
    inside, outside = run_dir / "converted.keras", workdir / "elsewhere.keras"
    save_keras_model(runs.load_run(str(run_dir)), inside)
    shutil.copy(inside, outside)
    classifier = predict.load_classifier(inside)
    assert (classifier.labels, classifier.crop_fraction) == (list(CLASSES), CROP_FRACTION)
    classifier = predict.load_classifier(outside)
    assert (classifier.labels, classifier.crop_fraction) == (["class_0", "class_1", "class_2"], 1.0)


def test_a_tflite_carries_its_runs_crop_wherever_it_is_copied(tflite, workdir):
    moved = workdir / "moved" / "model.tflite"  # without its .json sidecar, away from its run
    moved.parent.mkdir()
    shutil.copy(tflite, moved)
    assert predict.tflite_crop_fraction(str(moved), (32, 32, 3)) == CROP_FRACTION != 1.0
    assert predict.default_crop_fraction((32, 32, 3)) == 1.0  # CIFAR's
    assert predict.default_crop_fraction((224, 224, 3)) == 0.875  # ImageNet's

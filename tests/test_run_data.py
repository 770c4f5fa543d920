"""A run's data, read back from its config.json (mobilenets.runs.run_data), is the one source of truth
for evaluate.py and int8 calibration: a run is evaluated on the images it held out, calibrated on the
ones it trained on, with its own split; per-class top-1 and the confusion matrix in the report, the
JSON and a PNG; Ctrl-C gives one line. Runs are written by hand (config.json, model.json, a checkpoint)
with a least-squares classifier on top, so every test takes seconds."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from hparams import apply_overrides, get_preset
from mobilenets import build_model, runs
from mobilenets.data import make_dataset
from mobilenets.data import folder as folder_data
from mobilenets.data import npz as npz_data
from mobilenets.deploy import export as export_module
from mobilenets.errors import ConfigError, DataError
from mobilenets.evaluation import Report, evaluate_path, format_report, per_class
from mobilenets.runs import source_options
from mobilenets.training.precise_bn import recompute_batch_norm_statistics
from support import assert_quantized_file_agrees
from userdata import CLASSES, assert_ok, assert_one_line_error, run_cli, tree_snapshot, write_npz, write_photos

SPEC = dict(name="mobilenetv2", num_classes=3, width_multiplier=0.35, input_shape=[32, 32, 3])
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_config(run_dir, preset, *overrides):
    return apply_overrides(get_preset(preset), [
        f"run.run_dir={run_dir}", "model.name=mobilenetv2", "model.width_multiplier=0.35", "model.input_size=32",
        "model.config=imagenet", "model.num_classes=3", *overrides])


def all_images(data, split):
    """Every image and label of `split` as `data` reads it (file order)."""
    batches = list(make_dataset(**data.dataset_arguments(split), batch_size=64, training=False))
    return np.concatenate([b[0].numpy() for b in batches]), np.concatenate([b[1].numpy() for b in batches])


def fit_classifier(model, images, labels):
    """A least-squares linear probe on the pooled features: a 'trained' model in a second."""
    features = keras.Model(model.input, model.get_layer("pool").output)(images).numpy()
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    solution = np.linalg.lstsq(features, np.eye(3)[labels], rcond=None)[0]
    model.get_layer("logits").set_weights([solution[:-1], solution[-1]])


def write_run(run_dir, config, best=False, fit=True):
    """A run directory as training leaves it: config.json, model.json and a checkpoint (in best/ too when
    `best`), of a model fitted to the run's training images when `fit`: BatchNorm statistics of those images
    (precise BN, as the trainer leaves them; with the initial ones activations grow through the depth until
    the classes differ by less than an int8 step: its int8 file agreed on 33% of top-1s, correlation 0), then
    a least-squares classifier. Seeded: this backbone's random features are what tell the held-out photos apart
    (seed 1: 5 of the folder run's 9)."""
    run_dir.mkdir(parents=True)
    config.save(str(run_dir / runs.CONFIG_FILE))
    runs.save_model_spec(str(run_dir), **SPEC)
    keras.utils.set_random_seed(1)
    model = build_model(**SPEC)
    if fit:
        images, labels = all_images(runs.run_data(str(run_dir)), "train")
        recompute_batch_norm_statistics(model, images)
        fit_classifier(model, images, labels)
    for kind in ("checkpoints", "best") if best else ("checkpoints",):
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run_dir / kind), 2).save()
    return run_dir


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("run_data")


@pytest.fixture(scope="module")
def photos(root):
    return write_photos(root / "photos")  # flat: photos/<class>/*.png|jpg, no split folders


@pytest.fixture(scope="module")
def folder_run(root, photos):
    """A fine-tuning run on a flat photo folder, a quarter of each class held out."""
    config = run_config(root / "folder_run", "finetune", f"data.data_dir={photos}", "data.validation_fraction=0.25")
    return write_run(root / "folder_run", config)


@pytest.fixture(scope="module")
def npz_file(root):
    return write_npz(root / "arrays.npz", n=60)


@pytest.fixture(scope="module")
def npz_run_all(root, npz_file):
    """A run that trained on every image of its .npz file (validation_fraction=0): no validation, no best/."""
    config = run_config(root / "npz_all", "smoke", "data.dataset=npz", f"data.data_dir={npz_file}",
                        "data.validation_fraction=0")
    return write_run(root / "npz_all", config)


@pytest.fixture(scope="module")
def npz_run_quarter(root, npz_file):
    config = run_config(root / "npz_quarter", "smoke", "data.dataset=npz", f"data.data_dir={npz_file}",
                        "data.validation_fraction=0.25")
    return write_run(root / "npz_quarter", config, best=True)


def held_out_paths(photos, fraction=0.25, seed=0):
    """The photos the data module's own split holds out, and the ones it trains on."""
    scan = folder_data.scan_folder(str(photos), "train")
    mask = folder_data.held_out(scan.labels, fraction, seed)
    return [p for p, m in zip(scan.paths, mask) if m], [p for p, m in zip(scan.paths, mask) if not m]


def rows(images):
    return {image.tobytes() for image in images.astype(np.float32)}


# ----- the run's data ---------------------------------------------------------------------------------


def test_run_data_is_the_runs_dataset_options_and_model_size(folder_run, photos):
    data = runs.run_data(str(folder_run))
    config = runs.load_run_config(str(folder_run))
    assert (data.dataset, data.data_dir, data.image_size) == ("folder", str(photos), 32)
    assert data.options == source_options(config) and data.options["validation_fraction"] == 0.25
    assert data.eval_crop_fraction == config.data.eval_crop_fraction and data.from_run
    assert data.held_out() == "validation"
    held, trained = held_out_paths(photos)
    validation, labels = all_images(data, "validation")
    train, _ = all_images(data, "train")
    assert (len(validation), len(train)) == (len(held), len(trained)) == (9, 27)
    assert np.bincount(labels).tolist() == [3, 3, 3]
    assert not rows(validation) & rows(train)  # held-out images are never training images
    other = runs.run_data(str(folder_run), dataset="synthetic")  # another dataset: its own defaults
    assert (other.dataset, other.options, other.from_run, other.image_size) == ("synthetic", {}, False, 32)


# ----- int8 export calibrates on the run's training images (finding 1) ---------------------------------


def test_int8_export_of_a_flat_folder_run_calibrates_on_its_training_images_only(folder_run, tmp_path, monkeypatch):
    drawn = []
    calibration_images = export_module._calibration_images
    monkeypatch.setattr(export_module, "_calibration_images",
                        lambda *args: drawn.append(calibration_images(*args)) or drawn[-1])
    report = export_module.export(str(folder_run), tmp_path / "m.tflite", quantize="int8", latency_runs=1)
    data = runs.run_data(str(folder_run))
    train, validation = rows(all_images(data, "train")[0]), rows(all_images(data, "validation")[0])
    (calibration,) = drawn
    assert len(calibration) == len(train) == 27
    assert rows(calibration) == train and not rows(calibration) & validation
    assert report.calibration.startswith("27 images of folder train (the run trained on these: 0.75 of")
    assert (tmp_path / "m.tflite").stat().st_size > 0
    assert json.loads((tmp_path / "m.tflite.json").read_text())["labels"] == list(CLASSES)
    # The run's int8 file against its Keras model, run here on all 36 photos (the 9 held out included). A random
    # backbone under a linear probe, its last maps 1x1: its file agrees on 0.7 of the top-1s (other seeds 0.65-0.8;
    # a trained model's 97%) and export warns so. Chance is 1/3 (0.55: 2.8 standard errors above), a useless
    # file's correlation 0.
    images = np.concatenate([all_images(data, "train")[0], all_images(data, "validation")[0]])
    assert report.parity.images == 27 and report.parity.top1_agreement >= 0.55
    assert_quantized_file_agrees(tmp_path / "m.tflite", runs.load_run(str(folder_run)), images, probabilities=True,
                                 top1=0.55, correlation=0.5)


def test_int8_export_without_images_to_read_says_to_pass_representative_data(root, tmp_path):
    gone = write_photos(tmp_path / "gone", per_class=4, bad_file=False)
    config = run_config(tmp_path / "run", "finetune", f"data.data_dir={gone}", "data.validation_fraction=0.25")
    run = write_run(tmp_path / "run", config)
    for path in gone.rglob("*.*"):
        path.unlink()
    with pytest.raises(ConfigError, match="pass --representative-data DATASET or FILE.npz") as error:
        export_module.export(str(run), tmp_path / "m.tflite", quantize="int8", latency_runs=1)
    assert "\n" not in str(error.value) and "cannot read the run's training images" in str(error.value)
    assert not (tmp_path / "m.tflite").exists()


# ----- evaluate.py on the run's held-out images (finding 2) ----------------------------------------


def test_folder_run_is_evaluated_on_the_images_it_held_out_with_per_class_results(folder_run, photos, tmp_path):
    report = evaluate_path(folder_run, json_path=tmp_path / "r.json", plot_path=tmp_path / "r.png", batch_size=4)
    held, _ = held_out_paths(photos)
    assert report.num_images == len(held) == 9 and report.split == "validation" and not report.trained_on
    assert report.data == f"folder validation (held out: 0.25 of {photos}, 9 images)"
    assert report.class_names == list(CLASSES)
    confusion = np.array(report.confusion_matrix)
    assert confusion.sum(axis=1).tolist() == [entry["count"] for entry in report.per_class] == [3, 3, 3]
    assert [entry["top1"] for entry in report.per_class] == pytest.approx(np.diag(confusion) / 3)
    assert report.top1 == pytest.approx(np.trace(confusion) / 9) and report.top1 > 0.5  # a working classifier
    assert json.loads((tmp_path / "r.json").read_text()) == report.as_dict()
    assert (tmp_path / "r.png").read_bytes()[:8] == PNG_SIGNATURE
    printed = format_report(report)
    for index, entry in enumerate(report.per_class):
        line = next(line for line in printed.splitlines() if line.strip().startswith(entry["label"] + " "))
        assert f"{100 * entry['top1']:.2f}% of 3; " + " / ".join(map(str, confusion[index])) in line


def test_npz_run_that_trained_on_every_image_is_refused_and_its_training_split_labelled(npz_run_all, npz_file):
    for dataset in (None, "npz"):  # the old way, --dataset npz, applied npz's default 0.15 split
        with pytest.raises(DataError, match="held out none to evaluate") as error:
            evaluate_path(npz_run_all, dataset, data_dir=npz_file if dataset else None)
        assert "\n" not in str(error.value) and "--split train" in str(error.value)
    report = evaluate_path(npz_run_all, split="train")
    assert report.num_images == 60 and report.trained_on
    assert report.data == f"npz train (the run trained on these: {npz_file}, 60 images)"


def test_best_checkpoint_of_a_run_without_validation_is_the_last_and_the_report_says_so(npz_run_all, npz_run_quarter):
    report = evaluate_path(npz_run_all, split="train")
    last = runs.latest_checkpoint(str(npz_run_all), "last")
    why = "the run kept no best checkpoint, it had no validation split to pick one"
    assert report.checkpoint == f"{last} (the last: {why})"
    assert printed_value(format_report(report), "checkpoint") == report.checkpoint
    best = evaluate_path(npz_run_quarter)
    assert best.checkpoint == runs.latest_checkpoint(str(npz_run_quarter), "best")
    assert best.num_images == len(npz_data.split_indices(60, 0.25, 0)["validation"]) == 15


def test_a_tflite_takes_its_class_names_from_its_metadata(folder_run, npz_file, tmp_path):
    export_module.export(str(folder_run), tmp_path / "f.tflite", latency_runs=1, parity_images=4)
    report = evaluate_path(tmp_path / "f.tflite", "npz", data_dir=npz_file)  # npz itself names no class
    assert report.class_names == list(CLASSES)
    assert report.num_images == len(npz_data.split_indices(60, 0.15, 0)["validation"])
    with pytest.raises(ConfigError, match="exported from a run on folder data; pass --data-dir"):
        evaluate_path(tmp_path / "f.tflite")


def test_a_flat_folder_runs_tflite_scores_what_the_run_held_out_given_only_its_data_dir(folder_run, photos, tmp_path):
    """The file records its input size and the run's split, as it records the crop: `evaluate.py model.tflite
    --data-dir photos` scores the images `evaluate.py RUN` scores, to the same top-1 (it used to find no
    'validation' folder, and with --split train to ask for --image-size)."""
    from mobilenets.commands import evaluate as evaluate_command

    path = tmp_path / "f.tflite"
    export_module.export(str(folder_run), path, latency_runs=1, parity_images=4)
    assert evaluate_command.main([str(path), "--data-dir", str(photos), "--json", str(tmp_path / "f.json")]) == 0
    by_file, by_run = json.loads((tmp_path / "f.json").read_text()), evaluate_path(folder_run).as_dict()
    for key in ("data", "num_images", "top1", "confusion_matrix", "class_names"):
        assert by_file[key] == by_run[key], key
    assert by_run["data"] == f"folder validation (held out: 0.25 of {photos}, 9 images)"
    assert len({predicted for row in by_run["confusion_matrix"] for predicted, n in enumerate(row) if n}) > 1
    trained_on = evaluate_path(path, data_dir=photos, split="train")
    assert (trained_on.num_images, trained_on.trained_on) == (27, True)


def test_many_classes_print_the_worst_and_say_where_the_rest_is():
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 3, (25, 25)) + np.diag(rng.integers(1, 30, 25))
    names = [f"class_{i}" for i in range(25)]
    results = per_class(confusion, names)
    report = Report(model="m", source="run", dataset="d", split="validation", data="d validation", trained_on=False,
                    num_images=int(confusion.sum()), top1=float(np.trace(confusion) / confusion.sum()), top5=1.0,
                    loss=0.0, params=None, madds=None, class_names=names, per_class=results,
                    confusion_matrix=confusion.tolist())
    printed = format_report(report).splitlines()
    top1 = np.diag(confusion) / confusion.sum(axis=1)
    worst = [names[i] for i in np.argsort(top1, kind="stable")[:5]]
    listed = [line.split()[0] for line in printed if line.startswith("  class_")]
    assert listed == worst
    assert any("worst 5 classes" in line for line in printed)
    assert printed[-1].split(None, 1)[1].strip() == "every class: pass --json PATH or --plot PATH"
    report.json = "r.json"
    assert format_report(report).splitlines()[-1].endswith("every class: r.json")


# ----- the command line -------------------------------------------------------------------------------


def printed_value(stdout, name):
    return next(line[len(name):].strip() for line in stdout.splitlines() if line.startswith(name + " "))


def test_cli_evaluates_a_folder_run_without_dataset_and_prints_what_the_json_holds(folder_run, photos, tmp_path):
    result = assert_ok(run_cli("evaluate.py", folder_run, "--json", tmp_path / "r.json", "--plot", tmp_path / "r.png"))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert printed_value(result.stdout, "data") == f"folder validation (held out: 0.25 of {photos}, 9 images)"
    assert printed_value(result.stdout, "top-1") == f"{100 * saved['top1']:.2f}%"
    assert saved["num_images"] == 9 and np.array(saved["confusion_matrix"]).sum() == 9
    assert (tmp_path / "r.png").read_bytes()[:8] == PNG_SIGNATURE


def test_cli_evaluates_npz_runs_without_dataset_on_their_own_split(npz_run_all, npz_run_quarter, tmp_path):
    result = assert_ok(run_cli("evaluate.py", npz_run_quarter, "--json", tmp_path / "q.json"))
    assert json.loads((tmp_path / "q.json").read_text())["num_images"] == 15
    assert printed_value(result.stdout, "data").startswith("npz validation (held out: 0.25 of")
    refused = run_cli("evaluate.py", npz_run_all, "--json", tmp_path / "all.json")
    assert_one_line_error(refused, "held out none to evaluate", "--split train")
    assert not (tmp_path / "all.json").exists()


# ----- Ctrl-C -----------------------------------------------------------------------------------------


# evaluate.py as a terminal runs it, Ctrl-C pressed (SIGINT to itself) once its third batch is scored: in the
# middle of the evaluation, whatever the machine's speed. It prints how many batches were scored on stdout.
INTERRUPT_WHILE_EVALUATING = """
import os, runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises, as in a terminal, even in the background
from mobilenets.commands import cli
evaluation = cli.import_quietly("mobilenets.evaluation")
scored, predict = [], evaluation.KerasPredictor.predict

def predict_then_ctrl_c(self, images):
    scored.append(len(images))
    print("scored", len(scored), flush=True)
    if len(scored) == 3:
        os.kill(os.getpid(), signal.SIGINT)
        signal.pause()  # the KeyboardInterrupt is raised here
    return predict(self, images)

evaluation.KerasPredictor.predict = predict_then_ctrl_c
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_ctrl_c_during_evaluate_prints_one_line_exits_130_and_writes_nothing(root, tmp_path):
    """A synthetic run too long to finish, interrupted while it evaluates: one line, exit 130, nothing written
    beside it nor in the run."""
    config = run_config(root / "long_run", "smoke", "data.synthetic_examples=1000000", "model.num_classes=3")
    run = write_run(root / "long_run", config, fit=False)
    before = tree_snapshot(run)
    result = run_cli("-c", INTERRUPT_WHILE_EVALUATING, "evaluate.py", run, "--json", tmp_path / "r.json",
                     "--plot", tmp_path / "r.png", "--batch-size", "8", timeout=300)
    assert result.returncode == 130, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.strip()] == ["interrupted: nothing was written"]
    assert result.stdout.split() == ["scored", "1", "scored", "2", "scored", "3"]  # no report printed
    assert list(tmp_path.iterdir()) == [] and tree_snapshot(run) == before

"""evaluate.py / mobilenets.evaluation: one checkpoint evaluated as a masked LGC model, after
conversion to group convs (saved, reloaded) and as a float .tflite gives the same figures;
user mistakes give one-line errors and write nothing."""

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tf_keras as keras

from mobilenets import build_model, runs
from mobilenets.models.condensation import condense
from mobilenets.data import make_dataset
from mobilenets.deploy.convert import convert_learned_group_model
from mobilenets.errors import CheckpointError, ConfigError, DataError
from mobilenets.evaluation import Metrics, evaluate, evaluate_path, format_report
from mobilenets.runs import load_keras_model, run_dir_of_checkpoint, source_kind
from mobilenets.models.costs import count
from support import randomize, to_tflite, write_run

ROOT = pathlib.Path(__file__).resolve().parents[1]
LGC_SPEC = dict(name="mobilenetv2_lgc", num_classes=10, config="cifar", width_multiplier=0.35)
PLAIN_SPEC = dict(name="mobilenetv1", num_classes=10, config="cifar", width_multiplier=0.25)
DATA = dict(dataset="synthetic", batch_size=8, max_images=32)


def fit_logits(model):
    """A least-squares linear probe on synthetic training images: a 'trained' classifier in a second."""
    images, labels = next(iter(make_dataset("synthetic", "train", 64, training=False)))
    features = keras.Model(model.input, model.get_layer("pool").output)(images).numpy()
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    solution = np.linalg.lstsq(features, np.eye(10)[labels.numpy()], rcond=None)[0]
    model.get_layer("logits").set_weights([solution[:-1], solution[-1]])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("evaluate")


@pytest.fixture(scope="module")
def lgc_run(workdir):
    model = build_model(**LGC_SPEC)
    randomize(model)
    while condense(model):
        pass
    fit_logits(model)
    run_dir = workdir / "lgc_run"
    write_run(run_dir, model, LGC_SPEC)
    return run_dir, model


@pytest.fixture(scope="module")
def plain_run(workdir):
    run_dir = workdir / "plain_run"
    write_run(run_dir, build_model(**PLAIN_SPEC), PLAIN_SPEC)
    return run_dir


@pytest.fixture(scope="module")
def reports(lgc_run, workdir):
    """The same checkpoint evaluated as stored, converted (then saved and reloaded) and as .tflite."""
    run_dir, _ = lgc_run
    converted_path = workdir / "converted.keras"
    checkpoint = evaluate_path(run_dir, **DATA)
    converted = evaluate_path(run_dir, convert=True, output=converted_path, json_path=workdir / "report.json", **DATA)
    reloaded = evaluate_path(converted_path, **DATA)
    tflite_path = workdir / "converted.tflite"
    tflite_path.write_bytes(to_tflite(load_keras_model(str(converted_path))))
    tflite = evaluate_path(tflite_path, num_threads=1, **DATA)
    return {"checkpoint": checkpoint, "converted": converted, "reloaded": reloaded, "tflite": tflite}


def one_line_error(error_info):
    message = str(error_info.value)
    assert message and "\n" not in message
    return message


def test_checkpoint_converted_and_tflite_report_the_same_figures(reports):
    reference = reports["checkpoint"]
    assert reference.num_images == 32 and reference.top1 > 0.2  # a working classifier, not a constant
    for report in reports.values():
        assert (report.num_images, report.top1, report.top5) == (32, reference.top1, reference.top5)
        assert report.loss == pytest.approx(reference.loss, abs=1e-4)


def test_costs_of_the_condensed_and_the_deployed_forms(reports, lgc_run):
    condensed = count(lgc_run[1])
    deployed = count(convert_learned_group_model(lgc_run[1]))  # dense expansions, grouped projections
    assert condensed.madds < deployed.madds
    checkpoint = reports["checkpoint"]
    assert (checkpoint.params, checkpoint.madds) == (condensed.params, condensed.madds)
    assert checkpoint.lgc_madds == {"condensed": condensed.madds, "deployed": deployed.madds}
    assert "LGC forms" in format_report(checkpoint)
    for name in ("converted", "reloaded"):
        assert (reports[name].params, reports[name].madds) == (deployed.params, deployed.madds)
    tflite = reports["tflite"]
    assert tflite.madds == deployed.madds
    assert 0 < tflite.params < deployed.params and "BatchNorm folded" in tflite.cost_note


def test_tflite_reports_latency_and_keras_does_not(reports):
    assert reports["tflite"].latency_ms > 0 and reports["tflite"].num_threads == 1
    assert reports["checkpoint"].latency_ms is None
    assert "ms/image" in format_report(reports["tflite"]) and "ms/image" not in format_report(reports["checkpoint"])


def test_convert_saves_the_model_and_a_json_report(reports, workdir):
    report = reports["converted"]
    assert report.converted and report.converted_to == str(workdir / "converted.keras")
    assert json.loads((workdir / "report.json").read_text()) == report.as_dict()
    assert "converted to group convs" in format_report(report)


def test_source_kinds(lgc_run, reports, workdir):
    run_dir, _ = lgc_run
    prefix = runs.latest_checkpoint(str(run_dir), "last")
    assert source_kind(run_dir) == "run" and source_kind(prefix) == "checkpoint"
    assert run_dir_of_checkpoint(prefix) == str(run_dir)
    assert source_kind(workdir / "converted.keras") == "keras" and source_kind(workdir / "converted.tflite") == "tflite"


def test_evaluate_counts_top1_top5_and_loss():
    class Fixed:
        input_shape, num_classes = (1, 1, 3), 6

        def predict(self, images):
            return np.tile(np.log(np.arange(1.0, 7.0)), (len(images), 1))  # class 5 first, then 4, 3...

    batches = [(np.zeros((2, 1, 1, 3)), np.array([5, 0])), (np.zeros((2, 1, 1, 3)), np.array([2, 1]))]
    metrics = evaluate(Fixed(), batches)
    loss = -np.mean(np.log(np.array([6, 1, 3, 2]) / 21.0))
    assert metrics == Metrics(4, 0.25, 0.75, pytest.approx(loss))
    assert evaluate(Fixed(), batches, max_images=1).num_images == 1


def test_another_architectures_checkpoint_is_rejected(lgc_run, plain_run, workdir):
    foreign = workdir / "foreign_run"
    shutil.copytree(lgc_run[0] / "checkpoints", foreign / "checkpoints")
    shutil.copy(plain_run / runs.MODEL_SPEC, foreign / runs.MODEL_SPEC)
    with pytest.raises(CheckpointError, match="does not fit model mobilenetv1") as error:
        evaluate_path(foreign, json_path=workdir / "foreign.json", **DATA)
    one_line_error(error)
    assert not (workdir / "foreign.json").exists()


def test_tflite_input_size_must_match_the_data(reports, workdir):
    with pytest.raises(DataError, match="takes 32x32x3 images but the data is 16x16x3") as error:
        evaluate_path(workdir / "converted.tflite", image_size=16, **DATA)
    one_line_error(error)


@pytest.mark.parametrize("content", [b"not a flatbuffer" * 8, b""], ids=["garbage", "empty"])
def test_corrupt_tflite_is_rejected(content, workdir):
    path = workdir / "corrupt.tflite"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a usable .tflite model") as error:
        evaluate_path(path, **DATA)
    one_line_error(error)


def test_convert_rejects_a_tflite_and_a_missing_path(reports, workdir):
    with pytest.raises(ConfigError, match="--convert needs"):
        evaluate_path(workdir / "converted.tflite", convert=True, **DATA)
    with pytest.raises(CheckpointError, match="does not exist") as error:
        evaluate_path(workdir / "nowhere", **DATA)
    one_line_error(error)


def test_cli_convert_of_a_model_without_lgc_fails_in_one_line_and_writes_nothing(plain_run, workdir):
    output, report = workdir / "plain_converted.keras", workdir / "plain.json"
    output.write_text("previous model")
    report.write_text("previous report")
    command = [sys.executable, str(ROOT / "evaluate.py"), str(plain_run), "--dataset", "synthetic"]
    command += ["--max-images", "8", "--convert", "--output", str(output), "--json", str(report)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model mobilenetv1 has no learned group convolutions")
    assert output.read_text() == "previous model" and report.read_text() == "previous report"


def test_cli_main_prints_the_report(reports, workdir, capsys):
    spec = importlib.util.spec_from_file_location("evaluate_cli", ROOT / "evaluate.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    tflite = str(workdir / "converted.tflite")
    assert cli.main([tflite, "--dataset", "synthetic", "--max-images", "4", "--num-threads", "1"]) == 0
    printed = capsys.readouterr().out
    for key in ("top-1", "top-5", "loss", "4 images", "parameters", "multiply-adds", "latency"):
        assert key in printed
    assert cli.main([tflite, "--dataset", "synthetic", "--convert"]) == 2
    assert capsys.readouterr().err.startswith("error: --convert needs")


def test_exported_tflite_scores_its_probabilities_as_logits_and_prints_its_metadata(reports, workdir, capsys):
    """Our export ends in a softmax: log p gives the logits' top-1, top-5 and loss; the metadata is printed."""
    from mobilenets.commands import tflite_info as inspect_cli
    from mobilenets.deploy.export import export

    path = workdir / "exported.tflite"
    export(load_keras_model(str(workdir / "converted.keras")), path, latency_runs=1, parity_images=4)
    report, logits_report = evaluate_path(path, num_threads=1, **DATA), reports["tflite"]
    assert (report.top1, report.top5) == (logits_report.top1, logits_report.top5)
    assert report.loss == pytest.approx(logits_report.loss, rel=1e-3)
    printed = format_report(report)
    for expected in ("image: 32x32 RGB, float32", "mean 0, std 1", "probability: 10 classes", "10 in labels.txt"):
        assert expected in printed
    assert "no standard TFLite metadata" in format_report(logits_report)
    assert inspect_cli.main([str(path)]) == 0
    assert "labels.txt: class_0, class_1" in capsys.readouterr().out
    assert inspect_cli.main([str(workdir / "missing.tflite")]) == 2
    assert capsys.readouterr().err.startswith("error: ")

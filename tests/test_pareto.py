"""benchmarks/pareto.py end to end on a tiny slice in the real slice's format: two models, one seed, one
epoch, two worker processes side by side; then a point loses its outputs and a second run redoes only
that point, reusing the other untouched."""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from userdata import REPO, write_npz

MODELS = ("mobilenetv2", "mobilenetv4_conv_small")  # cifar10_short and cifar10_short_v4
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def run_pareto(data, out):
    command = [sys.executable, str(REPO / "benchmarks" / "pareto.py"), "--data", str(data), "--out", str(out),
               "--models", *MODELS, "--widths", "0.35", "--seeds", "0", "--epochs", "1", "--jobs", "2",
               "--runs", "5", "--warmup", "1"]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def stamps(directory):
    """{relative path: mtime_ns} of every file and folder under `directory`."""
    found = {}
    for root, folders, files in os.walk(directory):
        for name in folders + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, directory)] = os.stat(path).st_mtime_ns
    return found


def scores(point):
    """A point's point.json but the latencies, which every run of pareto.py times again and writes there."""
    with open(point / "point.json") as f:
        return {key: value for key, value in json.load(f).items() if not key.endswith("_ms")}


def files_against_keras(point):
    """A point's two files, run here on its 15 held-out images, against its run's Keras model: the float32 file
    gives its top-1 on every image and probabilities within 1e-4; the int8 file its top-1 on 10 of the 15 and
    probabilities that correlate 0.9 (one epoch on 85 images: near-uniform probabilities, whose top two int8's
    rounding can swap; an int8 file calibrated wrongly scores about 1/10 and 0)."""
    from mobilenets import runs
    from mobilenets.data import make_dataset
    from support import file_against_keras

    run = str(point / "run")
    data = runs.run_data(run)
    images = np.concatenate([batch[0].numpy() for batch in make_dataset(
        **data.dataset_arguments(data.held_out()), batch_size=100, training=False)])
    model = runs.load_run(run, "last")
    assert len(images) == 15
    float32 = file_against_keras(point / "float32.tflite", model, images, probabilities=True)
    assert float32.top1_agreement == 1.0 and float32.max_abs_diff <= 1e-4, float32.max_abs_diff
    int8 = file_against_keras(point / "int8.tflite", model, images, probabilities=True)
    assert int8.top1_agreement >= 10 / 15 and int8.correlation >= 0.9, (point.name, int8.top1_agreement,
                                                                        int8.correlation)


def test_pareto_runs_end_to_end_and_resumes(tmp_path):
    data = write_npz(tmp_path / "slice.npz", n=100, num_classes=10)  # 85 training images: one batch of 64
    out = tmp_path / "pareto"
    run_pareto(data, out)

    rows = {row["model"]: row for row in read_csv(out / "pareto.csv")}
    assert set(rows) == set(MODELS)
    for model, row in rows.items():
        assert row["recipe"] == ("cifar10_short_v4" if model.startswith("mobilenetv4") else "cifar10_short")
        assert (row["width"], row["seed"], row["epochs"], row["held_out_images"]) == ("0.35", "0", "1", "15")
        for precision in ("keras", "float32", "int8"):
            top1 = float(row[f"{precision}_top1"])
            assert np.isclose(top1 * 15, round(top1 * 15))  # a count of the 15 held-out images
        assert row["float32_top1"] == row["keras_top1"]  # the float32 file computes what the Keras model does
        files_against_keras(out / "points" / f"{model}_w0.35_s0")
        assert float(row["float32_ms"]) > 0 and float(row["int8_ms"]) > 0
        assert int(row["madds"]) == int(row["madds_deployed"]) > 0 and int(row["params"]) > 0
    summary = {row["model"]: row for row in read_csv(out / "summary.csv")}
    assert set(summary) == set(MODELS) and all(row["seeds"] == "1" for row in summary.values())
    assert float(summary["mobilenetv2"]["keras_top1_mean"]) == float(rows["mobilenetv2"]["keras_top1"])
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    kept, redone = (out / "points" / f"{model}_w0.35_s0" for model in MODELS)
    before, kept_record = stamps(kept), scores(kept)
    for name in ("point.json", "int8.tflite", "int8.tflite.json"):
        (redone / name).unlink()
    training = (redone / "training.json").read_text()
    stdout = run_pareto(data, out)

    assert "1 of 2 points already done; 1 to run" in stdout
    # the finished point untouched: run, exports, scores; its point.json rewritten with its files' new latencies
    assert {**stamps(kept), "point.json": None} == {**before, "point.json": None} and scores(kept) == kept_record
    assert (redone / "training.json").read_text() == training  # its finished training reused, not rerun
    assert (redone / "point.json").exists() and (redone / "int8.tflite").exists()
    again = {row["model"]: row for row in read_csv(out / "pareto.csv")}
    for model in MODELS:
        for key in ("keras_top1", "float32_top1", "madds", "epochs"):
            assert again[model][key] == rows[model][key]


def load_pareto():
    spec = importlib.util.spec_from_file_location("pareto", REPO / "benchmarks" / "pareto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entry(model, width, float32_ms, int8_ms, float32_top1, int8_top1):
    return {"model": model, "width": width, "float32_ms_mean": float32_ms, "int8_ms_mean": int8_ms,
            "float32_top1_mean": float32_top1, "int8_top1_mean": int8_top1}


def test_learned_group_models_are_compared_with_the_dense_mobilenetv2_front_and_at_the_same_width():
    pareto = load_pareto()
    summary = pareto.against_dense([
        entry("mobilenetv2", 0.35, 0.6, 0.4, 0.72, 0.58),  # thinner, faster and (float32) more accurate
        entry("mobilenetv2", 0.5, 1.0, 0.5, 0.70, 0.69),
        entry("mobilenetv2_lgc", 0.5, 0.8, 0.45, 0.64, 0.60),  # between the dense widths in both precisions
        entry("mobilenetv2_gc_lgc", 0.75, 0.55, 1.2, 0.7, 0.7),  # faster / slower than every dense width
        entry("mobilenetv3_small", 1.0, 0.9, 0.5, 0.7, 0.7),
    ])
    lgc, gc_lgc, v3 = summary[2:]
    assert lgc["float32_ms_vs_dense"] == pytest.approx(0.8) and lgc["int8_ms_vs_dense"] == pytest.approx(0.9)
    # the front at 0.8 ms is the 0.35 model's 72%; at 0.45 ms int8, its 58%
    assert lgc["float32_top1_vs_dense"] == pytest.approx(-8.0) and lgc["int8_top1_vs_dense"] == pytest.approx(2.0)
    assert gc_lgc["float32_ms_vs_dense"] is None  # no dense 0.75 in this summary
    assert gc_lgc["float32_top1_vs_dense"] is None  # faster than the whole dense front
    assert gc_lgc["int8_top1_vs_dense"] == pytest.approx(1.0)  # the front's best, 69%
    assert "float32_top1_vs_dense" not in v3

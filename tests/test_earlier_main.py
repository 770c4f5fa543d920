"""Saved models and runs written by an earlier main still load, resume and evaluate (tests/fixtures/earlier_main)."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import tf_keras as keras

from mobilenets.models import registry  # noqa: F401  (registers our layers, as any entry point does)
from mobilenets.training.rundir import config_hash
from hparams import Config
from userdata import assert_ok, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "earlier_main"
RUN_NAME = "mobilenetv2_lgc-synthetic-b7f59bd3"
ORIGINAL_COMMAND = ("train.py", "--model", "mobilenetv2_lgc", "--dataset", "synthetic", "--epochs", "2",
                    "--width", "0.25", "--batch-size", "8", "--set", "run.steps_per_epoch=2")


def test_keras_file_of_an_earlier_main_loads_with_the_same_logits():
    model = keras.models.load_model(FIXTURES / "mobilenetv4_hybrid_medium.keras")
    io = np.load(FIXTURES / "mobilenetv4_hybrid_medium_io.npz")
    np.testing.assert_allclose(model(io["x"], training=False).numpy(), io["y"], rtol=0, atol=1e-5)


def test_run_of_an_earlier_main_keeps_its_hash_resumes_and_evaluates(tmp_path):
    shutil.copytree(FIXTURES / "runs", tmp_path / "runs")
    run = tmp_path / "runs" / RUN_NAME
    config = Config.from_dict(json.loads((run / "config.json").read_text()))
    assert config_hash(config) == RUN_NAME.rsplit("-", 1)[1]

    finished = run_cli(*ORIGINAL_COMMAND, cwd=tmp_path)  # the same command finds the same, finished run
    assert_ok(finished)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [RUN_NAME]

    three_epochs = [("3" if previous == "--epochs" else arg) for previous, arg in zip(("",) + ORIGINAL_COMMAND, ORIGINAL_COMMAND)]
    resumed = run_cli(*three_epochs, "--resume", "--run-dir", run, cwd=tmp_path)
    assert_ok(resumed)
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]

    evaluated = run_cli("evaluate.py", run, "--split", "train", cwd=tmp_path)
    assert_ok(evaluated)
    assert "top-1" in evaluated.stdout

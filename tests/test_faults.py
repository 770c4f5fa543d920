"""Fault tolerance (issue 7): a NaN loss, a full disk while checkpointing, a damaged checkpoint,
bad config files. SIGKILL at random points is tests/test_train.py's (it shares that file's runs);
atomic writes are tests/test_io.py's; a corrupt .tflite is tests/test_evaluate.py's and
tests/test_export.py's; the property tests of the builder and the config parser are
tests/test_builder_properties.py's and tests/test_hparams.py's.

Each fault is checked for what a user would lose: the last complete checkpoint must stay
readable with finite weights, and the error must be one line that says what to do.
"""

import os
import pathlib
import resource
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from hparams import apply_overrides, get_preset
from mobilenets.errors import CheckpointError
from mobilenets.runs import load_run
from mobilenets.training import train
from mobilenets.training.optimization import learning_rate_schedule

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def tiny(run_dir, *overrides):
    """MobileNetV1 0.35 on 32x32 synthetic images, 2 steps of 8 per epoch."""
    return apply_overrides(get_preset("smoke"), [
        f"run.run_dir={run_dir}", "model.name=mobilenetv1", "model.width_multiplier=0.35", "model.config=imagenet",
        "data.synthetic_examples=16", "schedule.batch_size=8", "run.steps_per_epoch=2", "schedule.epochs=3",
        *overrides,
    ])


def checkpoint_files(run_dir):
    return sorted(name for name in os.listdir(run_dir / "checkpoints") if name.startswith("ckpt-"))


def assert_readable_and_finite(run_dir):
    model = load_run(str(run_dir), "last")
    assert all(np.all(np.isfinite(v.numpy())) for v in model.variables)


class Poison(keras.callbacks.Callback):
    """Fills a kernel with NaN when epoch `epoch` begins (the first `times` times it does)."""

    def __init__(self, epoch=1, times=1):
        super().__init__()
        self.epoch, self.times = epoch, times

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch and self.times:
            self.times -= 1
            kernel = self.model.network.trainable_variables[-2]
            kernel.assign(tf.fill(kernel.shape, np.nan))


def test_nan_restart_continues_from_the_last_good_checkpoint_with_a_lower_learning_rate(tmp_path):
    config = tiny(tmp_path, "run.nan_policy=restart", "run.nan_lr_factor=0.25")
    messages = []
    result = train(config, run_eagerly=True, verbose=0, log=messages.append, callbacks=[Poison(epoch=1)])
    assert result.diverged is None and result.epochs_done == 3
    restarts = [m for m in messages if "restarting" in m]
    assert len(restarts) == 1
    assert "the loss became nan at step 3" in restarts[0] and "ckpt-1 (epoch 1)" in restarts[0]
    assert "learning rate times 0.25" in restarts[0]
    steps_per_epoch = 2
    full_rate = float(learning_rate_schedule(config, steps_per_epoch)(3 * steps_per_epoch - 1))  # its last step
    assert result.history[-1]["learning_rate"] == pytest.approx(0.25 * full_rate, rel=1e-6)
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert tf.train.load_variable(latest, "lr_scale/.ATTRIBUTES/VARIABLE_VALUE") == pytest.approx(0.25)
    assert_readable_and_finite(tmp_path)
    csv_epochs = [line.split(",")[0] for line in (tmp_path / "log.csv").read_text().splitlines()[1:]]
    assert csv_epochs == ["1", "2", "3"]


def test_nan_restarts_are_bounded_then_the_run_stops_with_the_last_good_checkpoint(tmp_path):
    config = tiny(tmp_path, "run.nan_policy=restart", "run.nan_restarts=2")
    messages = []
    result = train(config, run_eagerly=True, verbose=0, log=messages.append, callbacks=[Poison(epoch=1, times=99)])
    assert sum("restarting" in m for m in messages) == 2
    assert result.diverged and "at step 3 (batch 1 of epoch 2)" in result.diverged
    assert checkpoint_files(tmp_path) == ["ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    assert_readable_and_finite(tmp_path)


class DiskFullAfterFirstCheckpoint(keras.callbacks.Callback):
    """From the end of epoch 1 (after its checkpoint), no file may grow past `limit` bytes: the
    kernel refuses the write (EFBIG; Python ignores SIGXFSZ), as a full disk refuses it (ENOSPC)."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_full_disk_while_checkpointing_is_one_clear_error_and_keeps_the_previous_checkpoint(tmp_path):
    config = tiny(tmp_path)
    saved_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        with pytest.raises(CheckpointError) as raised:
            train(config, verbose=0, log=lambda *_: None, callbacks=[DiskFullAfterFirstCheckpoint(64 * 1024)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, saved_limit)
    message = str(raised.value)
    assert "\n" not in message
    assert "could not write checkpoint" in message and "ckpt-2" in message and "File too large" in message
    assert "ckpt-1) is intact" in message and "run the same command again to resume" in message
    assert checkpoint_files(tmp_path) == ["ckpt-1.data-00000-of-00001", "ckpt-1.index"]  # no partial ckpt-2
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-1")
    assert_readable_and_finite(tmp_path)


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_damaged_latest_checkpoint_resumes_from_the_one_before(tmp_path):
    config = tiny(tmp_path, "schedule.epochs=2")
    train(config, verbose=0, log=lambda *_: None)
    truncate(tmp_path / "checkpoints" / "ckpt-2.data-00000-of-00001")
    messages = []
    result = train(config, verbose=0, log=messages.append)
    assert any("ckpt-2 cannot be read" in m for m in messages), messages
    assert any("resuming after epoch 1" in m for m in messages), messages
    assert result.epochs_done == 2 and len(result.history) == 1
    assert_readable_and_finite(tmp_path)  # ckpt-2 written again, whole


def run_script(script, *args):
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT, env=ENV, text=True,
                          capture_output=True, timeout=300)


def test_truncated_checkpoint_given_to_evaluate_is_one_line_and_overwrites_nothing(tmp_path):
    train(tiny(tmp_path, "schedule.epochs=1"), verbose=0, log=lambda *_: None)
    truncate(tmp_path / "checkpoints" / "ckpt-1.data-00000-of-00001")
    report = tmp_path / "report.json"
    report.write_text("{\"kept\": true}")
    result = run_script("evaluate.py", tmp_path / "checkpoints" / "ckpt-1", "--dataset", "synthetic",
                        "--json", report)
    assert result.returncode == 2
    assert result.stderr.startswith("error: checkpoint") and "truncated" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert report.read_text() == "{\"kept\": true}"


@pytest.mark.parametrize("text,fragment", [
    ("optimizer:\n  lr: fast\n", "optimizer.lr"),
    ("optimizer:\n  learning_rate: 0.1\n", "unknown key 'optimizer.learning_rate'"),
    ("model: [1, 2\n", "is not valid YAML"),
])
def test_bad_config_file_given_to_train_is_one_line_and_writes_nothing(tmp_path, text, fragment):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = run_script("train.py", "--model", "mobilenetv2", "--config", path, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and fragment in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["config.yaml"]

"""The command line where it used to trip (issue 21): a full disk or Ctrl-C during export, an unwritable
or foreign run directory, a failed start that left an empty run directory, log.csv's learning rate,
and the converter's, LiteRT's and TensorFlow's own lines on stderr.

Small on purpose: width 0.35, 32x32 images, a few steps; CLIs run in a subprocess (tests/userdata.py).
"""

import csv
import errno
import os
import re

import pytest
import tf_keras as keras

from hparams import apply_overrides, get_preset
from mobilenets import io
from mobilenets.deploy.profile import OpTime, format_profile
from mobilenets.errors import DataError
from userdata import assert_ok, assert_one_line_error, run_cli, run_without_tensorflow, write_npz

TINY_EXPORT = ["mobilenetv2", "--width-multiplier", "0.35", "--input-size", "32", "--config", "cifar",
               "--num-classes", "10", "--latency-runs", "5", "--parity-images", "4", "--calibration-images", "8"]


def tiny(run_dir, *overrides):
    """MobileNetV1 0.35 on 32x32 synthetic images, 2 steps of 8 per epoch, 2 epochs."""
    return apply_overrides(get_preset("smoke"), [
        f"run.run_dir={run_dir}", "model.name=mobilenetv1", "model.width_multiplier=0.35", "model.config=imagenet",
        "data.synthetic_examples=16", "schedule.batch_size=8", "run.steps_per_epoch=2", "schedule.epochs=2",
        *overrides,
    ])


def quiet(*_):
    pass


def run_limited(file_size_limit, script, *argv):
    """`python script *argv` in a subprocess whose files may not grow past `file_size_limit` bytes: the
    kernel refuses the write (EFBIG; Python ignores SIGXFSZ) as a full disk refuses it (ENOSPC)."""
    code = ("import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, resource.RLIM_INFINITY)); "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    return run_cli("-c", code, script, *argv)


# ----- export: full disk, Ctrl-C, noise ---------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("images") / "images.npz", n=16, num_classes=10)


def test_full_disk_during_export_is_one_line_and_keeps_the_previous_file(images, tmp_path):
    output = tmp_path / "model.tflite"
    output.write_bytes(b"the user's earlier export")
    result = run_limited(64 * 1024, "export_tflite.py", *TINY_EXPORT, "--representative-data", images,
                         "--output", output)
    line = assert_one_line_error(result, f"cannot write {output}", "File too large", "free in", "nothing was written")
    assert "file size limit" in line
    assert output.read_bytes() == b"the user's earlier export"
    assert sorted(os.listdir(tmp_path)) == ["model.tflite"]  # no temporary, no .json sidecar


def test_full_disk_names_the_bytes_needed_and_the_free_space(tmp_path, monkeypatch):
    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(io.WriteError) as raised:
        io.write_bytes(tmp_path / "model.tflite", b"x" * 3000)
    message = str(raised.value)
    assert message.startswith(f"cannot write {tmp_path / 'model.tflite'}: the disk is full (No space left on device")
    assert "2.9 KB needed" in message and f"free in {tmp_path}" in message and "\n" not in message
    assert os.listdir(tmp_path) == []


INTERRUPT_DURING_PARITY = """
import os, runpy, signal, sys
from mobilenets.commands import cli

signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises, as in a terminal, even when started in the background
export = cli.import_quietly("mobilenets.deploy.export")  # its start-up lines held back as the CLI holds them

def interrupted(*args, **kwargs):  # Ctrl-C once the .tflite is written, while its parity is checked
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()

export.parity = interrupted
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_ctrl_c_during_export_is_one_line_exit_130_and_writes_nothing(images, tmp_path):
    output = tmp_path / "model.tflite"
    result = run_cli("-c", INTERRUPT_DURING_PARITY, "export_tflite.py", *TINY_EXPORT, "--representative-data",
                     images, "--output", output)
    assert result.returncode == 130, result.stderr[-3000:]
    assert result.stderr.splitlines() == ["interrupted: nothing was written"]
    assert os.listdir(tmp_path) == []


NOISE = ("fully_quantize", "inference_type", "XNNPACK delegate", "Statistics for quantized inputs", "I0000",
         "oneDNN", "cuda")


def test_int8_export_prints_no_converter_or_runtime_lines(images, tmp_path):
    result = assert_ok(run_cli("export_tflite.py", *TINY_EXPORT, "--quantize", "int8", "--representative-data",
                               images, "--output", tmp_path / "model.tflite"))
    assert not any(noise in result.stderr for noise in NOISE), result.stderr
    assert result.stderr == ""
    assert re.search(r"^quantization +int8, 8 images of \S*images.npz$", result.stdout, re.M), result.stdout
    assert (tmp_path / "model.tflite").stat().st_size > 0


def test_summary_prints_the_table_and_nothing_on_stderr():
    result = assert_ok(run_cli("-m", "mobilenets.commands.summary", "mobilenetv2", "--width", "0.35"))
    assert result.stderr == ""
    assert result.stdout.splitlines()[1].split()[:3] == ["mobilenetv2", "224x224", "1.677M"]


HELP_WITHOUT_TENSORFLOW = """
import contextlib, io, runpy, sys
target = sys.argv[1]
sys.argv = [target, "--help"]
with contextlib.redirect_stdout(io.StringIO()) as shown:
    try:
        runpy.run_path(target, run_name="__main__") if target.endswith(".py") else runpy.run_module(
            target, run_name="__main__")
    except SystemExit:
        pass
print("usage" in shown.getvalue(), sorted(m for m in ("tensorflow", "tf_keras") if m in sys.modules))
"""


@pytest.mark.parametrize("command", ["train.py", "evaluate.py", "export_tflite.py", "mobilenets.commands.summary",
                                     "mobilenets.commands.tflite_info", "mobilenets.commands.profile",
                                     "mobilenets.commands.plot", "mobilenets.commands.predict"])
def test_help_does_not_import_tensorflow(command):
    result = assert_ok(run_cli("-c", HELP_WITHOUT_TENSORFLOW, command))
    assert result.stdout.splitlines()[-1] == "True []", result.stdout[-2000:]
    assert result.stderr == ""


@pytest.mark.parametrize("command, flags, fragments", [
    ("export_tflite.py", ["mobilenetv2", "--quantize", "bogus"], ["--quantize", "'bogus'", "'int8'"]),
    ("export_tflite.py", ["mobilenetv2", "--representative-data", "bogus"],
     ["--representative-data", ".npz", "cifar10"]),
    ("evaluate.py", ["run", "--dataset", "bogus"], ["--dataset", "'bogus'", "'folder'"]),
    ("evaluate.py", ["run", "--split", "bogus"], ["--split", "'bogus'", "'validation'"]),
    ("evaluate.py", ["run", "--batch-size", "0"], ["--batch-size", "positive integer"]),
    ("mobilenets.commands.summary", ["bogus"], ["unknown model 'bogus'", "mobilenetv2"]),
    ("mobilenets.commands.summary", ["--dataset", "bogus"], ["--dataset", "'cifar100'"]),
    ("mobilenets.commands.predict", ["run", "photo.jpg", "--top-k", "0"], ["--top-k must be a positive integer"]),
    ("mobilenets.commands.profile", ["model.tflite", "--threads", "0"], ["--threads", "positive integer"]),
    ("train.py", ["--model", "mobilenetv2", "--verbose", "3"], ["--verbose", "'3'"]),
])
def test_a_bad_flag_value_is_one_line_before_tensorflow_loads(command, flags, fragments):
    """Refused in the parse step, before TensorFlow's 8-12 s start-up: one line that names the choices."""
    assert_one_line_error(run_without_tensorflow(command, *flags), *fragments)


def test_profile_by_kind_shows_the_top_kinds_only():
    rows = [OpTime(0, "CONV_2D", "1x8x8x8", "", 3.0, True), OpTime(1, "CONV_2D", "1x8x8x8", "", 1.0, True),
            OpTime(2, "DEPTHWISE_CONV_2D", "1x8x8x8", "", 2.0, True), OpTime(3, "MEAN", "1x8", "", 0.5, True),
            OpTime(4, "SOFTMAX", "1x8", "", 0.25, False)]
    lines = format_profile(rows, 7.0, 1, {"SOFTMAX": 1}, top=2, by_kind=True).splitlines()
    assert [line.split()[:3] for line in lines[2:]] == [["CONV_2D", "2", "4.000"],
                                                         ["DEPTHWISE_CONV_2D", "1", "2.000"]]
    assert len(format_profile(rows, 7.0, 1, {}, by_kind=True).splitlines()) == 2 + 4


# ----- train: run directories -------------------------------------------------------------------------


def test_unwritable_run_directory_is_one_line():
    result = run_cli("train.py", "--preset", "smoke", "--run-dir", "/proc/x/run")
    assert_one_line_error(result, "cannot create the run directory /proc/x/run", "pick another --run-dir")


def test_failed_start_leaves_no_run_directory_behind(tmp_path):
    result = run_cli("train.py", "--preset", "smoke", "--width", "0.35", "--epochs", "1", "--lr", "1e30",
                     "--on-nan", "raise", "--verbose", "0", "--run-dir", tmp_path / "new" / "run")
    assert_one_line_error(result, "the loss became nan")
    assert os.listdir(tmp_path) == []  # run/, and new/ that this run created too


class FailsAtEpoch(keras.callbacks.Callback):
    """Raises the DataError a bad image would, at the end of the first batch of epoch `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.now = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.now == self.epoch:
            raise DataError("image 3 is not an image; remove it")


def test_failed_start_in_a_directory_that_existed_keeps_it_and_a_failure_after_a_checkpoint_keeps_the_run(tmp_path):
    from mobilenets.training import train

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(DataError):
        train(tiny(existing), verbose=0, log=quiet, callbacks=[FailsAtEpoch(0)])
    assert (existing / "notes.txt").read_text() == "mine"

    created = tmp_path / "created" / "run"
    with pytest.raises(DataError):
        train(tiny(created), verbose=0, log=quiet, callbacks=[FailsAtEpoch(1)])
    assert sorted(p.name for p in (created / "checkpoints").glob("ckpt-*.index")) == ["ckpt-1.index"]
    assert (created / "config.json").exists() and (created / "model.json").exists()


def test_resuming_into_another_models_run_says_whose_run_it_is_before_any_restore(tmp_path):
    from mobilenets.training import train

    run = tmp_path / "v2"
    train(tiny(run, "model.name=mobilenetv2", "schedule.epochs=1"), verbose=0, log=quiet)
    before = sorted(os.listdir(run))
    result = run_cli("train.py", "--preset", "smoke", "--model", "mobilenetv3_small", "--width", "0.35",
                     "--run-dir", run, "--resume")
    assert_one_line_error(result, f"{run} holds a mobilenetv2 run of width 0.35", "pick another --run-dir",
                          "--model mobilenetv2")
    assert "--width" not in result.stderr  # the width is the run's already
    assert sorted(os.listdir(run)) == before


# ----- train: log.csv's learning rate, the start line ---------------------------------------------


def logged_rates(run_dir):
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    return [int(row["step"]) for row in rows], [float(row["learning_rate"]) for row in rows]


def test_log_csv_holds_the_rate_of_each_epochs_last_step(tmp_path):
    from mobilenets.training import learning_rate_schedule, train

    config = tiny(tmp_path, "schedule.epochs=3", "schedule.decay=cosine", "schedule.warmup_epochs=1",
                  "optimizer.lr=0.1")
    lines = []
    train(config, verbose=0, log=lines.append)
    steps, rates = logged_rates(tmp_path)
    schedule = learning_rate_schedule(config, steps_per_epoch=2)
    assert steps == [2, 4, 6]
    assert rates == pytest.approx([float(schedule(step - 1)) for step in steps], rel=1e-6)
    assert rates[0] == pytest.approx(0.05)  # warm-up: the rate its last step reached (1 of 2 steps in)
    assert 0 < rates[-1] < 0.02  # the cosine's last step, not the 0.0 after the end
    assert "3 epochs x 2 steps" in lines[0]


def test_fine_tune_phase_one_logs_phase_ones_rate_and_one_epoch_is_singular(tmp_path):
    from mobilenets.training import train

    config = apply_overrides(get_preset("finetune"), [
        f"run.run_dir={tmp_path}", "model.weights=null", "model.name=mobilenetv1", "model.width_multiplier=0.35",
        "model.input_size=32", "model.num_classes=3", "data.dataset=synthetic", "data.data_dir=null",
        "data.synthetic_examples=16", "data.augmentation=none", "data.validation_fraction=0",
        "schedule.batch_size=8", "run.steps_per_epoch=2", "schedule.epochs=2", "finetune.head_epochs=1"])
    train(config, verbose=0, log=quiet)
    assert logged_rates(tmp_path)[1] == pytest.approx([1e-4, 1e-5])  # Adam 1e-4, then a tenth of it

    lines = []
    train(tiny(tmp_path / "one", "schedule.epochs=1"), verbose=0, log=lines.append)
    assert "on synthetic: 1 epoch x 2 steps" in lines[0], lines[0]

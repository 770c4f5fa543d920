"""Training (issue 4): every model trains, the objective's terms, the learning-rate schedule, LGC
condensation, divergence, the train.py command, resume after SIGKILL, MirroredStrategy and a
two-process multi-worker run.

Small on purpose (synthetic 32x32 images, width 0.35, a few steps of tiny batches) so that the
file runs in a few minutes on 2 CPU cores. The commands run as subprocesses: a run killed with
SIGKILL, logical devices that must be configured before TensorFlow starts, one process per worker.
"""

import csv
import json
import os
import pathlib
import pickle
import random
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mobilenets.commands import train as train_script
from hparams import apply_overrides, get_preset
from mobilenets.models.condensation import condense, group_lasso, learned_group_convs
from mobilenets.errors import ConfigError, TrainingDiverged
from mobilenets.models.registry import build_model, is_learned_group_model
from mobilenets.runs import load_run
from mobilenets.commands import cli
from mobilenets.training import Classifier, Trainer, WarmupDecay, condensation_steps, train
from mobilenets.training.rundir import check_resumable
from models_under_test import models_under_test

ROOT = pathlib.Path(__file__).resolve().parents[1]
# After 6 steps the loss on 32 held-out images is at most this share of its value after 2 (0.61-0.81 for the
# models swept; a model that only memorises its batches: about 1).
HELD_OUT_DROP = 0.9
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def quiet(*_):
    pass


def tiny(run_dir, model="mobilenetv2", *overrides):
    """The smoke preset shrunk: width 0.35, stride-2 stem (cheap at 32x32), 16 synthetic images."""
    return apply_overrides(get_preset("smoke"), [
        f"run.run_dir={run_dir}", f"model.name={model}", "model.width_multiplier=0.35", "model.config=imagenet",
        "data.synthetic_examples=16", "schedule.batch_size=16", "run.steps_per_epoch=1", *overrides,
    ])


def images_and_labels(count=8, seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.uniform(0, 255, (count, 32, 32, 3)), tf.float32),
            tf.constant(rng.integers(0, 10, count), tf.int32))


# ----- every model, the objective, the schedule ----------------------------------------------------


# train.py is one path for every model; its sweep takes the kinds whose training differs (plain, condensing,
# squeeze-excite, V4's blocks). test_models.py::test_every_model_trains_saves_and_reloads takes Adam steps on
# every model under test (every variable gets a gradient, the loss falls), attention included: Hybrid-Large,
# eager here, took 30 s of the suite's 15-minute budget.
@pytest.mark.parametrize("name", models_under_test(leave_out=("mobilenetv1", "mobilenetv2_gc_lgc", "igcv3",
                                                              "mobilenetv4_hybrid_large")))
def test_every_model_trains_from_the_command_line_and_its_loss_falls_on_images_it_did_not_step_on(name, tmp_path):
    # train.py's main in this process, run eagerly (no tracing keeps every model cheap): 3 epochs of 2 steps of
    # 16 on 32 synthetic images, validated after each on 32 others (the validation split: the classes' colours,
    # other noise), precise BN before. CIFAR strides: with ImageNet's, 32x32 inputs end in 1x1 maps, whose
    # BatchNorm over a batch of 16 makes the first steps erratic. Adam, since plain SGD is erratic on these tiny
    # networks; Hybrid-Large's attention and layer scales at 1e-4 (at 1e-3 its loss rises from the second epoch).
    # LGC models condense (C=2) in two more epochs, after the ones compared (a stage may raise the loss).
    lgc = ["model.condense_factor=2", "lgc.schedule=fixed_epochs", "lgc.fixed_epochs=[4]", "schedule.epochs=5"]
    settings = ["model.width_multiplier=0.35", "model.config=cifar", "data.synthetic_examples=32",
                "optimizer.name=adam", f"optimizer.lr={1e-4 if 'hybrid' in name else 1e-3}", "run.eval_every=1",
                "run.checkpoint_every=100", *(lgc if is_learned_group_model(name) else [])]
    flags = ["--preset", "smoke", "--model", name, "--epochs", "3", "--batch-size", "16", "--steps-per-epoch", "2",
             "--run-dir", str(tmp_path), "--run-eagerly", "--verbose", "0"]
    assert train_script.main(flags + [part for setting in settings for part in ("--set", setting)]) == 0
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))[:3]
    losses, held_out = ([float(row[key]) for row in rows] for key in ("loss", "val_loss"))
    assert np.all(np.isfinite(losses + held_out)) and len(held_out) == 3, rows
    assert losses[2] < 0.9 * losses[0], losses  # the mean over each epoch's two batches
    assert held_out[2] < HELD_OUT_DROP * held_out[0], held_out  # learned what holds beyond the images stepped on


def test_group_lasso_enters_the_loss_with_its_weight():
    network = build_model("mobilenetv2_lgc", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.35,
                          config="imagenet")
    condense(network)  # a realistic, partly masked state
    images, labels = images_and_labels()
    logits = network(images, training=False)

    def loss(lasso_decay):
        classifier = Classifier(network, lasso_decay=lasso_decay).compile_objective(keras.optimizers.SGD(0.1))
        return float(classifier.compute_loss(y=labels, y_pred=logits))  # what fit's train step minimises

    weight = 1e-3
    np.testing.assert_allclose(loss(weight) - loss(0.0), weight * float(group_lasso(network)), rtol=1e-4)


def test_weight_decay_is_pytorch_style_and_skips_biases_and_batch_norm_when_asked():
    network = build_model("mobilenetv2", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.35,
                          config="imagenet")
    weights = [v for v in network.trainable_variables if v.shape.rank > 1]
    assert len(weights) < len(network.trainable_variables)  # there are BatchNorm scales/offsets and biases

    def half_squares(variables):
        return sum(0.5 * float(tf.reduce_sum(tf.square(v))) for v in variables)

    decay = 4e-5
    skip = Classifier(network, weight_decay=decay, decay_bn_and_bias=False).penalty()
    every = Classifier(network, weight_decay=decay, decay_bn_and_bias=True).penalty()
    np.testing.assert_allclose(float(skip), decay * half_squares(weights), rtol=1e-5)
    np.testing.assert_allclose(float(every), decay * half_squares(network.trainable_variables), rtol=1e-5)


def test_learning_rate_warms_up_linearly_per_batch_then_decays():
    cosine = WarmupDecay(0.4, steps_per_epoch=10, epochs=10, warmup_epochs=2, decay="cosine")
    rate = lambda schedule, step: float(schedule(step))  # noqa: E731
    assert rate(cosine, 0) == 0.0
    np.testing.assert_allclose([rate(cosine, 5), rate(cosine, 10), rate(cosine, 20)], [0.1, 0.2, 0.4], rtol=1e-6)
    np.testing.assert_allclose(rate(cosine, 60), 0.2, rtol=1e-5)  # half way through the decay
    np.testing.assert_allclose(rate(cosine, 100), 0.0, atol=1e-7)
    per_epoch = WarmupDecay(1.0, 10, 10, decay="step", per_batch=False, decay_rate=0.5, decay_epochs=2)
    assert [rate(per_epoch, s) for s in (0, 19, 20, 39, 40)] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_condensation_steps_follow_the_chosen_schedule(tmp_path):
    network = build_model("mobilenetv2_lgc", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.35,
                          config="imagenet", condense_factor=4)
    config = tiny(tmp_path, "mobilenetv2_lgc", "schedule.epochs=12")
    assert condensation_steps(config, network, steps_per_epoch=10) == [20, 40, 60]  # progress 1/6, 2/6, 3/6
    fixed = apply_overrides(config, ["lgc.schedule=fixed_epochs", "lgc.fixed_epochs=[3,5,7]"])
    assert condensation_steps(fixed, network, steps_per_epoch=10) == [30, 50, 70]
    plain = build_model("mobilenetv2", num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.35)
    assert condensation_steps(config, plain, steps_per_epoch=10) == []


# ----- LGC training and divergence -----------------------------------------------------------------


def test_lgc_model_condenses_to_one_over_c_and_keeps_learning_after_each_stage(tmp_path):
    factor = 4
    config = tiny(tmp_path, "mobilenetv2_lgc", f"model.condense_factor={factor}", "model.groups=4",
                  "optimizer.name=adam", "optimizer.lr=0.001", "lgc.lasso_decay=1e-4", "schedule.epochs=8",
                  "lgc.schedule=fixed_epochs", "lgc.fixed_epochs=[2,4,6]", "run.eval_every=100")
    result = train(config, run_eagerly=True, verbose=0, log=quiet)  # graph mode: see the resume test
    losses = [epoch["loss"] for epoch in result.history]  # one step per epoch: the loss of each step
    for stage_epoch in (2, 4, 6):  # condensed after that many steps; then two more steps
        assert losses[stage_epoch + 1] < losses[stage_epoch], (stage_epoch, losses)
    assert losses[-1] < losses[0]
    layers = learned_group_convs(result.network)
    assert layers
    for layer in layers:
        assert int(layer.stage.numpy()) == factor - 1
        assert layer.sparsity() == pytest.approx((factor - 1) / factor, abs=1e-9), layer.name
    assert [round(epoch["lgc_sparsity"], 6) for epoch in result.history[1::2]] == [0.25, 0.5, 0.75, 0.75]
    reloaded = load_run(str(tmp_path), "last")  # the masks are in the checkpoint
    for saved, trained in zip(learned_group_convs(reloaded), layers):
        np.testing.assert_array_equal(saved.mask.numpy(), trained.mask.numpy())


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    class PoisonAtSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                kernel = self.model.network.trainable_variables[-2]
                kernel.assign(tf.fill(kernel.shape, np.nan))

    config = tiny(tmp_path, "mobilenetv1", "schedule.epochs=3", "run.steps_per_epoch=2", "schedule.batch_size=8")
    with pytest.raises(TrainingDiverged, match=r"at step 3 \(batch 1 of epoch 2\)") as raised:
        train(config, run_eagerly=True, verbose=0, log=quiet, callbacks=[PoisonAtSecondEpoch()])
    assert "ckpt-1" in str(raised.value) and "\n" not in str(raised.value)
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob("ckpt-*.index"))
    assert checkpoints == ["ckpt-1.index"]
    model = load_run(str(tmp_path), "last")
    assert all(np.all(np.isfinite(v.numpy())) for v in model.variables)


# ----- the command: end to end, errors, resume after SIGKILL ----------------------------------------

# Tiny, but with what resume must reproduce: dropout, momentum, a per-batch cosine, and
# condensation stages between kills (CondenseNet schedule over 12 steps: steps 2, 4 and 6).
COMMAND_FLAGS = ["--model", "mobilenetv2_lgc", "--dataset", "synthetic", "--epochs", "6", "--batch-size", "8",
                 "--width", "0.35", "--steps-per-epoch", "2", "--verbose", "2", "--set", "model.config=imagenet",
                 "--set", "data.synthetic_examples=32", "--set", "data.augmentation=cifar", "--set", "model.dropout=0.2",
                 "--set", "optimizer.lr=0.01", "--set", "run.log_every=2"]


def train_command(run_dir):
    return [sys.executable, str(ROOT / "train.py"), *COMMAND_FLAGS, "--run-dir", str(run_dir)]


def start_training(run_dir):
    return subprocess.Popen(train_command(run_dir), cwd=ROOT, env=ENV, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def command_runs(tmp_path_factory):
    """An uninterrupted run, started once for the tests below; it runs while the kill test works."""
    root = tmp_path_factory.mktemp("command")
    reference = start_training(root / "reference")
    yield root, reference
    if reference.poll() is None:
        reference.kill()
        reference.wait()


def kill_at(process, rng, epochs_done, during_start_up=False):
    """SIGKILLs `process` at a random moment: a random fraction of a second into the second epoch
    it trains (steps, validation, checkpoint writing) or, with during_start_up, during start-up
    (import, build, tracing). Returns where."""
    if not during_start_up and epochs_done + 2 <= 5:  # epochs trigger..6 (two or more) remain after the trigger line
        trigger = f"Epoch {epochs_done + 2}/6"
        for line in process.stdout:
            if line.startswith(trigger):
                break
        delay = rng.uniform(0.0, 0.3)
    else:
        trigger, delay = "start", rng.uniform(1.0, 4.0)
    threading.Timer(delay, process.send_signal, [signal.SIGKILL]).start()
    process.communicate(timeout=600)
    return f"{trigger} + {delay:.2f}s"


def epochs_in(checkpoint):
    return int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0


def test_run_killed_at_three_random_points_resumes_each_time_and_ends_with_the_uninterrupted_weights(command_runs):
    root, reference = command_runs
    run, rng = root / "interrupted", random.Random(5)
    process, kills, done = start_training(run), [], 0
    while len(kills) < 3:
        where = kill_at(process, rng, done, during_start_up=len(kills) == 2)
        assert process.returncode == -signal.SIGKILL, f"the run ended before the kill at {where}"
        latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
        assert epochs_in(latest) >= done  # never lost a complete checkpoint
        if latest:
            reader = tf.train.load_checkpoint(latest)  # complete and readable, whatever the kill interrupted
            assert all(np.all(np.isfinite(reader.get_tensor(key))) for key, _ in tf.train.list_variables(latest)
                       if key.endswith("VARIABLE_VALUE") and reader.get_tensor(key).dtype.kind == "f")
        done = epochs_in(latest)
        kills.append((where, done))
        process = start_training(run)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    assert f"resuming after epoch {done}" in output or (done == 0 and "starting" in output), output
    reference.wait(timeout=600)
    expected = tf.train.latest_checkpoint(str(root / "reference" / "checkpoints"))
    actual = tf.train.latest_checkpoint(str(run / "checkpoints"))
    keys = [key for key, _ in tf.train.list_variables(expected) if key.endswith("VARIABLE_VALUE")]
    assert any("mask" in key for key in keys) and any(key.startswith("optimizer/") for key in keys)
    assert keys == [key for key, _ in tf.train.list_variables(actual) if key.endswith("VARIABLE_VALUE")]
    for key in keys:
        np.testing.assert_allclose(tf.train.load_variable(actual, key), tf.train.load_variable(expected, key),
                                   rtol=1e-5, atol=1e-6, err_msg=f"{key} after kills at {kills}")
    csv_epochs = [line.split(",")[0] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert csv_epochs == ["1", "2", "3", "4", "5", "6"]


def test_train_command_end_to_end_leaves_checkpoints_logs_and_the_resolved_config(command_runs):
    root, reference = command_runs
    output, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, output
    run = root / "reference"
    assert "done: 6 epochs" in output and "Epoch 6/6" in output
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-6")
    assert tf.train.latest_checkpoint(str(run / "best"))
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "mobilenetv2_lgc" and config["data"]["dataset"] == "synthetic"
    assert config["schedule"]["epochs"] == 6 and config["lgc"]["lasso_decay"] == 1e-5  # the preset's LGC settings
    assert config["run"]["run_dir"] == str(run)
    assert json.loads((run / "model.json").read_text())["condense_factor"] == 4
    rows = (run / "log.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("epoch,step,seconds,loss,accuracy")
    tags = set()
    for events in (run / "logs" / "train").glob("events.out.tfevents.*"):
        tags |= {value.tag for event in tf.compat.v1.train.summary_iterator(str(events)) for value in event.summary.value}
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_lgc_sparsity", "batch_loss"} <= tags
    assert list((run / "logs" / "validation").glob("events.out.tfevents.*"))


def test_same_run_directory_with_other_settings_needs_resume(tmp_path):
    config = tiny(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    config.save(tmp_path / "config.json")
    assert check_resumable(config)
    assert check_resumable(apply_overrides(config, ["run.log_every=7", "run.strategy=mirrored"]))
    with pytest.raises(ConfigError, match=r"optimizer.lr: 0.01 -> 0.02\): pass --resume"):
        check_resumable(apply_overrides(config, ["optimizer.lr=0.02"]))
    assert check_resumable(apply_overrides(config, ["optimizer.lr=0.02", "run.resume=true"]))


@pytest.mark.parametrize("args,message", [
    (["--model", "mobilenetv9"], "error: unknown model 'mobilenetv9'"),
    (["--model", "mobilenetv2", "--set", "optimizer.lrr=1"], "error: unknown key 'optimizer.lrr'"),
    (["--preset", "smoke", "--dataset", "npz"], "error: data.data_dir must be the path of the 'npz' dataset"),
])
def test_train_command_errors_are_one_line_without_traceback(args, message):
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=ENV, text=True,
                            capture_output=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


# ----- tf.distribute ------------------------------------------------------------------------------

MIRRORED_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mobilenets.commands import train as train_script
from hparams import apply_overrides, get_preset
from mobilenets.models.condensation import condense, learned_group_convs
from mobilenets.models.registry import build_model
from mobilenets.training import train

def run(name, strategy):
    config = apply_overrides(get_preset("smoke"), [
        "run.run_dir=" + sys.argv[1] + "/" + name, "model.name=mobilenetv3_small_minimalistic",
        "model.width_multiplier=0.35", "model.config=imagenet", "data.synthetic_examples=32", "schedule.batch_size=16",
        "run.steps_per_epoch=1", "schedule.epochs=3", "run.eval_every=100", "optimizer.lr=0.001"])
    return train(config, strategy=strategy, sync_batchnorm=True, verbose=0, log=lambda *_: None)

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
one, two = run("one", tf.distribute.get_strategy()), run("two", mirrored)
with mirrored.scope():  # what the Condensation callback does between steps, in cross-replica context
    lgc = build_model("mobilenetv2_lgc", 10, (32, 32, 3), 0.35, config="imagenet")
    for layer in learned_group_convs(lgc):  # make the replicas' kernels differ: the mask must follow replica 0
        layer.kernel.values[1].assign(tf.random.normal(layer.kernel.shape))
    condense(lgc)
layers = learned_group_convs(lgc)
print(json.dumps({
    "one": [epoch["loss"] for epoch in one.history], "two": [epoch["loss"] for epoch in two.history],
    "replicas": len(layers[0].mask.values), "sparsity": float(np.mean([l.sparsity() for l in layers])),
    "masks_equal": all(np.array_equal(*[m.numpy() for m in layer.mask.values]) for layer in layers),
}))
"""


def test_mirrored_strategy_on_two_devices_matches_one_device_at_the_same_global_batch(tmp_path):
    # With sync_batchnorm the two replicas normalise over the global batch, as one device does.
    # MobileNetV3-Small minimalistic (ReLU): the ReLU6 networks of this tiny size (1x1 last maps,
    # batch 16) turn float rounding differences between one and two devices into visibly different
    # curves within a few steps. Condensation must give every replica the same masks.
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path)], cwd=ROOT, env=ENV, text=True,
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(report["two"], report["one"], rtol=1e-5)
    assert report["replicas"] == 2 and report["masks_equal"] and report["sparsity"] == pytest.approx(0.25)


# ----- runs as users start them (issue 12) ---------------------------------------------------------


def write_partial_cifar10(root, per_batch=8, test=16, seed=0):
    """The official python layout (cifar-10-batches-py/data_batch_1..5, test_batch) holding
    5 * per_batch training images instead of 50,000."""
    rng, folder = np.random.default_rng(seed), root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, count in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, count)],
                 b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return root


@pytest.fixture(scope="module")
def partial_cifar_run(tmp_path_factory):
    """An LGC model (C=2) trained 2 epochs of batch 8 on a partial CIFAR-10 directory of 40 training
    and 16 test images, with the per-batch cosine schedule and no step cap."""
    root = tmp_path_factory.mktemp("partial_cifar")
    data = write_partial_cifar10(root / "data")
    config = tiny(root / "run", "mobilenetv2_lgc", "data.dataset=cifar10", f"data.data_dir={data}",
                  "data.augmentation=cifar", "schedule.batch_size=8", "schedule.epochs=2", "schedule.decay=cosine",
                  "schedule.per_batch=true", "optimizer.lr=0.1", "run.steps_per_epoch=null", "model.condense_factor=2")
    lines = []
    result = train(config, run_eagerly=True, verbose=0, log=lines.append)
    return root / "run", result, lines


def test_cifar_run_validates_on_the_test_split_every_epoch_and_keeps_the_best(partial_cifar_run):
    run, result, _ = partial_cifar_run
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all(row["val_accuracy"] != "" and row["val_loss"] != "" for row in rows), rows
    assert result.best_top1 is not None
    assert tf.train.latest_checkpoint(str(run / "best"))


def test_partial_cifar_directory_plans_the_steps_it_holds_and_every_schedule_ends_on_time(partial_cifar_run):
    run, result, lines = partial_cifar_run
    assert "2 epochs x 5 steps of 8 images" in lines[0]  # 40 images on disk, not the nominal 50,000
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(row["step"]) for row in rows] == [5, 10]
    last_step = WarmupDecay(0.1, 5, 2, decay="cosine")(9)  # the rate the last of the 10 steps ran with
    assert float(rows[-1]["learning_rate"]) == pytest.approx(float(last_step), rel=1e-6)
    assert 0 < float(rows[-1]["learning_rate"]) < 0.01  # near the cosine's end, not 0.1
    assert float(rows[-1]["lgc_sparsity"]) == pytest.approx(0.5)  # C=2 condensed at half of the 10 steps
    assert any("condensation stage 1/1 at step 5" in line for line in lines), lines


HOLD_LOCK = "import sys; from mobilenets.training import lock; lock.acquire(sys.argv[1]); print('held', flush=True); " \
            "sys.stdin.read()"


def test_second_process_on_a_run_directory_refuses_naming_the_live_one_and_a_killed_ones_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], cwd=ROOT, env=ENV, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        flags = ["--preset", "smoke", "--epochs", "1", "--steps-per-epoch", "1", "--run-dir", str(run), "--verbose", "0"]
        second = subprocess.run([sys.executable, str(ROOT / "train.py"), *flags], cwd=ROOT, env=ENV, text=True,
                                capture_output=True, timeout=300)
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1 and f"in use by the training process pid {holder.pid} " in second.stderr
        assert not (run / "checkpoints").exists() and not (run / "config.json").exists()
    finally:
        holder.kill()  # SIGKILL: its lock file stays behind, naming a dead process
        holder.wait()
    assert f"pid {holder.pid}" in (run / "run.lock").read_text()
    result = train(tiny(run, "mobilenetv2", "schedule.epochs=1"), run_eagerly=True, verbose=0, log=quiet)
    assert result.epochs_done == 1
    trainer = Trainer(tiny(run, "mobilenetv2", "schedule.epochs=1"), run_eagerly=True, log=quiet)  # one process
    assert trainer.locked and f"pid {os.getpid()} " in (run / "run.lock").read_text()  # may take it again
    trainer.close()


def test_cpu_machine_sees_no_cuda_probe_error_and_a_gpu_user_sees_the_devices(tmp_path, capfd, monkeypatch):
    env = {k: v for k, v in ENV.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    flags = ["--preset", "smoke", "--epochs", "1", "--steps-per-epoch", "1", "--run-dir", str(tmp_path / "run"),
             "--verbose", "0", "--run-eagerly"]
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), *flags], cwd=ROOT, env=env, text=True,
                            capture_output=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr  # no "E0000 ... failed call to cuInit"
    monkeypatch.setattr(cli, "probe_devices", lambda: ["GPU:0 (Tesla T4)", "GPU:1 (Tesla T4)"])
    cli.import_quietly("json")
    assert capfd.readouterr().err == "TensorFlow uses GPU:0 (Tesla T4), GPU:1 (Tesla T4)\n"


def test_settings_added_later_leave_earlier_run_directories_where_they_were():
    """The default run directory's hash, as main computed it before model.weights and finetune.* existed:
    the same command must still find (and resume) a run started then."""
    from hparams import apply_overrides, get_preset
    from mobilenets.training.rundir import config_hash

    assert config_hash(get_preset("smoke")) == "05fd8503"
    assert config_hash(get_preset("cifar100_mobilenetv2_lgc")) == "7588d8f5"
    assert config_hash(apply_overrides(get_preset("smoke"), ["finetune.lr_factor=0.5"])) != "05fd8503"

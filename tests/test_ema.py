"""Exponential moving average of the weights (issue 15; mobilenets/training/ema.py).

The average equals its closed form (TF's num_updates warm-up included) on a scripted weight sequence
and along a real run; it survives an interrupted and resumed run bit-exactly; validation, best/,
evaluation, export and LGC conversion use it; with it off nothing changes (run hashes, checkpoints),
and with it on the trained weights are those of a run without it.
"""

import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from hparams import apply_overrides, get_preset
from mobilenets import runs
from mobilenets.models.condensation import learned_group_convs
from mobilenets.deploy.convert import convert_learned_group_model
from mobilenets.deploy.export import load_source
from mobilenets.errors import ConfigError
from mobilenets.models.layers import LearnedGroupConv
from mobilenets.runs import latest_checkpoint, load_run
from mobilenets.training import Trainer, train
from mobilenets.training.inputs import validation_dataset
from mobilenets.training.ema import WeightAverage, averaged_and_copied, decay_at
from mobilenets.training.rundir import config_hash

DECAY = 0.9
EAGER = True  # tiny runs: no tracing of the train and test steps


def quiet(*_):
    pass


def tiny(run_dir, *overrides):
    """MobileNetV1 0.35 on 32x32 synthetic images, 3 epochs of 2 steps of 8, validated every epoch; the moving
    BatchNorm statistics kept (no precise BN, which would replace the average's statistics: the closed forms
    below are of the average alone)."""
    return apply_overrides(get_preset("smoke"), [
        f"run.run_dir={run_dir}", "model.name=mobilenetv1", "model.width_multiplier=0.35", "model.config=imagenet",
        "data.synthetic_examples=16", "schedule.batch_size=8", "run.steps_per_epoch=2", "schedule.epochs=3",
        f"regularization.ema_decay={DECAY}", "run.precise_bn_images=0", *overrides,
    ])


def closed_form(weights, decay, warmup, first_step=1):
    """sum of decayed terms: prod_k d_k w_0 + sum_k (1 - d_k) prod_{j > k} d_j w_k, in float64."""
    steps = range(first_step, first_step + len(weights) - 1)
    decays = [decay_at(n, decay, warmup) for n in steps]
    total = np.prod(decays) * np.float64(weights[0])
    for k, (d, w) in enumerate(zip(decays, weights[1:])):
        total = total + (1 - d) * np.prod(decays[k + 1:]) * np.float64(w)
    return total


def checkpoint_values(path, prefix):
    return {key[len(prefix):]: tf.train.load_variable(path, key) for key, _ in tf.train.list_variables(path)
            if key.startswith(prefix) and key.endswith("VARIABLE_VALUE") and "OPTIMIZER_SLOT" not in key}


def model_values(model):
    with tempfile.TemporaryDirectory() as directory:
        path = tf.train.Checkpoint(model=model).write(os.path.join(directory, "model"))
        return checkpoint_values(path, "model/")


# ----- the rule ----------------------------------------------------------------------------------


def toy_lgc_model():
    inputs = keras.Input((4, 4, 8))
    x = LearnedGroupConv(8, groups=2, condense_factor=2, name="lgc")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="dense")(x))


@pytest.mark.parametrize("warmup", [True, False])
def test_average_equals_the_closed_form_of_a_scripted_weight_sequence_and_masks_are_copied(warmup):
    network, shadow = toy_lgc_model(), toy_lgc_model()
    ema = WeightAverage(network, shadow, DECAY, warmup)
    names = lambda pairs: sorted(var.name.split("/", 1)[-1].split(":")[0] for _, var in pairs)  # noqa: E731
    assert names(ema.averaged) == ["beta", "bias", "gamma", "kernel", "kernel", "moving_mean", "moving_variance"]
    assert names(ema.copied) == ["mask", "stage"]
    rng = np.random.default_rng(0)
    history = [[var.numpy() for _, var in ema.averaged]]
    lgc = network.get_layer("lgc")
    for step in range(1, 13):
        for _, var in ema.averaged:
            var.assign(rng.normal(size=var.shape).astype(np.float32))
        if step == 6:
            lgc.condense_step()  # a mask changes mid-way: copied, never averaged
        ema.update(step)
        history.append([var.numpy() for _, var in ema.averaged])
    for index, (avg, _) in enumerate(ema.averaged):
        expected = closed_form([h[index] for h in history], DECAY, warmup)
        np.testing.assert_allclose(avg.numpy(), expected, rtol=2e-5, atol=2e-6)
    assert decay_at(1, 0.9998) == pytest.approx(2 / 11) and decay_at(10 ** 6, 0.9998) == 0.9998
    ema.sync()
    shadow_lgc = shadow.get_layer("lgc")
    np.testing.assert_array_equal(shadow_lgc.mask.numpy(), lgc.mask.numpy())
    assert 0 < lgc.sparsity() and int(shadow_lgc.stage.numpy()) == 1
    x = tf.random.stateless_normal((2, 4, 4, 8), seed=(1, 2))
    averaged_output = shadow(x).numpy()
    before = [var.numpy() for _, var in ema.averaged] + [avg.numpy() for avg, _ in ema.averaged]
    ema.swap()
    np.testing.assert_array_equal(network(x).numpy(), averaged_output)  # the network now computes the average
    ema.swap()
    after = [var.numpy() for _, var in ema.averaged] + [avg.numpy() for avg, _ in ema.averaged]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # swapping twice is exact


# ----- along a run -------------------------------------------------------------------------------


class Record(keras.callbacks.Callback):
    """The averaged variables' trained values at the start and after every step."""

    def __init__(self, trainer):
        super().__init__()
        self.pairs, self.values, self.steps = trainer.ema.averaged, [], []

    def on_train_begin(self, logs=None):
        if not self.values:
            self.values.append([var.numpy() for _, var in self.pairs])
            self.steps.append(int(self.model.optimizer.iterations.numpy()))

    def on_train_batch_end(self, batch, logs=None):
        self.values.append([var.numpy() for _, var in self.pairs])
        self.steps.append(int(self.model.optimizer.iterations.numpy()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted EMA run with every trained value recorded, and the same run without EMA."""
    root = tmp_path_factory.mktemp("ema")
    trainer = Trainer(tiny(root / "ema"), run_eagerly=EAGER, log=quiet)
    record = Record(trainer)
    result = trainer.fit(callbacks=[record], verbose=0)
    train(tiny(root / "off", "regularization.ema_decay=0"), verbose=0, log=quiet, run_eagerly=EAGER)
    return root, trainer, record, result


def test_run_average_is_the_closed_form_of_its_steps_and_training_is_unchanged(reference):
    root, trainer, record, result = reference
    assert record.steps == list(range(7))  # 3 epochs x 2 steps, one update each
    last = latest_checkpoint(str(root / "ema"))
    average, trained = checkpoint_values(last, "ema/average/"), checkpoint_values(last, "model/")
    assert average.keys() == trained.keys() and len(average) == len(result.network.variables)
    for index, (avg, _) in enumerate(trainer.ema.averaged):
        expected = closed_form([values[index] for values in record.values], DECAY, True)
        np.testing.assert_allclose(avg.numpy(), expected, rtol=2e-5, atol=2e-6, err_msg=avg.name)
    # The trained weights are those of the same run without EMA: bit for bit (validation swapped back exactly).
    off = checkpoint_values(latest_checkpoint(str(root / "off")), "model/")
    assert off.keys() == trained.keys()
    assert all(np.array_equal(off[key], trained[key]) for key in off)
    assert not any(key.startswith("ema/") for key, _ in tf.train.list_variables(latest_checkpoint(str(root / "off"))))
    # Average and trained weights differ (else the tests below prove nothing).
    assert any(not np.allclose(average[key], trained[key]) for key in trained)


def test_validation_best_evaluation_and_export_use_the_averaged_weights(reference):
    root, trainer, record, result = reference
    run = str(root / "ema")
    last = latest_checkpoint(run)
    average = checkpoint_values(last, "ema/average/")
    # The network a finished run returns and its last checkpoint as evaluate.py and export_tflite.py
    # load it (run directory, checkpoint prefix) hold the average; best/ is checked below.
    loaded = {
        "result": result.network,
        "last": load_run(run, "last"),
        "evaluate (run)": runs.load_keras_source(run, "run", "last"),
        "evaluate (checkpoint)": runs.load_keras_source(last, "checkpoint"),
        "export": load_source(run, which="last").model,
    }
    for what, model in loaded.items():
        values = model_values(model)
        assert values.keys() == average.keys()
        for key in average:
            np.testing.assert_array_equal(values[key], average[key], err_msg=f"{what}: {key}")
    trained = model_values(load_run(run, "last", averaged=False))
    assert any(not np.array_equal(trained[key], average[key]) for key in average)
    # best/ holds the model validation measured: the average after the best epoch's last step.
    best = latest_checkpoint(run, "best")
    steps = 2 * int(best.rsplit("-", 1)[1])
    model = load_run(run, "best")
    pairs, _ = averaged_and_copied(trainer.network, model)  # in the order of trainer.ema.averaged
    for index, (variable, _) in enumerate(pairs):
        expected = closed_form([values[index] for values in record.values[:steps + 1]], DECAY, True)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=2e-5, atol=2e-6, err_msg=variable.name)
    # The last validation measured the average (as the checkpoint holds it), not the trained weights.
    images, labels = zip(*validation_dataset(trainer.config, trainer.plan).as_numpy_iterator())
    images, labels = np.concatenate(images), np.concatenate(labels)
    def cross_entropy(network):
        logits = network(images, training=False)
        return float(np.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)))
    logged = result.history[-1]["val_cross_entropy"]
    averaged, trained = cross_entropy(load_run(run, "last")), cross_entropy(load_run(run, "last", averaged=False))
    assert abs(logged - averaged) <= 2e-6 * averaged and abs(logged - trained) > 10 * abs(logged - averaged), (
        logged, averaged, trained)


def interrupt_in_epoch(epoch):
    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 2 * epoch + 1:  # the first step of `epoch`
                raise KeyboardInterrupt("killed")
    return Interrupt()


def test_interrupted_and_resumed_run_ends_with_bit_identical_average(reference, tmp_path):
    root, *_ = reference
    config = tiny(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(config, verbose=0, log=quiet, run_eagerly=EAGER, callbacks=[interrupt_in_epoch(1)])
    assert latest_checkpoint(str(tmp_path)).endswith("ckpt-1")
    messages = []
    train(config, verbose=0, log=messages.append, run_eagerly=EAGER)
    assert any("resuming after epoch 1" in m for m in messages), messages
    expected, actual = latest_checkpoint(str(root / "ema")), latest_checkpoint(str(tmp_path))
    keys = [key for key, _ in tf.train.list_variables(expected) if key.endswith("VARIABLE_VALUE")]
    assert any(key.startswith("ema/average/") for key in keys)
    assert keys == [key for key, _ in tf.train.list_variables(actual) if key.endswith("VARIABLE_VALUE")]
    for key in keys:
        np.testing.assert_array_equal(tf.train.load_variable(actual, key), tf.train.load_variable(expected, key),
                                      err_msg=key)
    best = [checkpoint_values(latest_checkpoint(str(r), "best"), "model/") for r in (root / "ema", tmp_path)]
    assert all(np.array_equal(best[0][key], best[1][key]) for key in best[0])


def test_resuming_a_run_without_average_with_ema_turned_on_starts_it_from_the_checkpoint(reference):
    root, *_ = reference
    messages = []
    trainer = Trainer(tiny(root / "off", "run.resume=true"), log=messages.append)  # the run trained without EMA
    trainer.close()
    assert any("holds no weight average" in m for m in messages), messages
    assert all(np.array_equal(avg.numpy(), var.numpy()) for avg, var in trainer.ema.averaged)


def test_ema_off_changes_no_run_directory_and_on_gets_its_own():
    assert config_hash(get_preset("smoke")) == "05fd8503"
    assert config_hash(get_preset("cifar100_mobilenetv2_lgc")) == "7588d8f5"
    assert config_hash(apply_overrides(get_preset("smoke"), ["regularization.ema_decay=0.9998"])) != "05fd8503"
    with pytest.raises(ConfigError, match="regularization.ema_decay"):
        apply_overrides(get_preset("smoke"), ["regularization.ema_decay=1"])
    for name in ("imagenet_mobilenetv3_large", "imagenet_mobilenetv3_small"):
        assert get_preset(name).regularization.ema_decay == 0.9998


# ----- LGC: the average is masked as the trained model is, and converts exactly --------------------


def test_condensed_lgc_run_with_average_converts_exactly(tmp_path):
    config = apply_overrides(tiny(tmp_path), [
        "model.name=mobilenetv2_lgc", "model.condense_factor=2", "model.groups=2", "lgc.schedule=fixed_epochs",
        "lgc.fixed_epochs=[1]", "schedule.epochs=2", "run.steps_per_epoch=1", "run.eval_every=2"])
    train(config, verbose=0, log=quiet, run_eagerly=EAGER)
    last = latest_checkpoint(str(tmp_path))
    trained, average = checkpoint_values(last, "model/"), checkpoint_values(last, "ema/average/")
    masks = [key for key in trained if "mask" in key or "stage" in key]
    assert masks and all(np.array_equal(trained[key], average[key]) for key in masks)
    assert latest_checkpoint(str(tmp_path), "best").endswith("ckpt-2")  # validated once, after condensation
    model = load_run(str(tmp_path))  # best/, as export_tflite.py takes a run
    best = model_values(model)
    assert all(np.array_equal(best[key], average[key]) for key in average)
    layers = learned_group_convs(model)
    assert all(int(layer.stage.numpy()) == 1 and layer.sparsity() == pytest.approx(0.5) for layer in layers)
    converted = convert_learned_group_model(model)
    images = tf.random.stateless_uniform((4, 32, 32, 3), seed=(3, 4), maxval=255.0)
    np.testing.assert_allclose(converted(images).numpy(), model(images).numpy(), rtol=1e-4, atol=1e-4)

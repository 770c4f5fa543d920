"""Fine-tuning (issue 12): pretrained weights (a keras.applications .h5 with random weights stands
in for ImageNet's, no download), a new classifier for a generated photo folder, the frozen phase
that leaves the backbone bit-identical, the unfrozen phase that changes it, LGC started from
MobileNetV2's weights, and a measurable transfer effect from a run of ours.

Small on purpose: 32x32 images, width 0.35, eager steps of batch 8.
"""

import csv
import itertools

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mobilenets.commands import train as train_script
from hparams import apply_overrides, get_preset
from mobilenets.models.condensation import learned_group_convs
from mobilenets.errors import CheckpointError, ConfigError
from mobilenets.models.pretrained import keras_application
from mobilenets.training.starting_weights import load_starting_weights
from mobilenets.models.registry import build_model
from mobilenets.training import learning_rate_schedule, train
from mobilenets.training.trainer import phase_layers

CLASSES = ("daisy", "rose", "tulip")
COLORS = ((230, 220, 60), (200, 40, 60), (150, 60, 200))


def write_photos(root, per_class=8, size=32, seed=0):
    """root/<class>/img_i.png: each class its own colour plus noise (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    for name, color in zip(CLASSES, COLORS):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = np.clip(np.array(color) + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            (root / name / f"img_{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    return root


def randomize_batch_norm(model, seed=0):
    """Random moving statistics, so that 'unchanged' and 'transferred' are not about 0s and 1s."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


def keras_h5(path, name, width=0.35, size=32):
    """A keras.applications model with random weights saved as .h5: the offline stand-in for ImageNet's file."""
    model = randomize_batch_norm(keras_application(name, width, (size, size, 3), 1000, weights=None))
    model.save_weights(str(path))
    return model


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos") / "photos")


def finetune_config(run_dir, model, weights, data_dir, *overrides):
    return apply_overrides(get_preset("finetune"), [
        f"run.run_dir={run_dir}", f"model.name={model}", f"model.weights={weights}", f"data.data_dir={data_dir}",
        "model.width_multiplier=0.35", "model.input_size=32", "data.augmentation=flip", "data.eval_crop_fraction=1.0",
        "data.validation_fraction=0.25", "schedule.batch_size=6", "schedule.epochs=2", "finetune.head_epochs=1",
        "optimizer.lr=0.01", *overrides])


class Snapshots(keras.callbacks.Callback):
    """Every variable of the network (weights and BatchNorm statistics) at each epoch's start and end."""

    def __init__(self, network):
        super().__init__()
        self.network, self.taken = network, {}

    def take(self):
        return {v.name: v.numpy().copy() for v in self.network.variables}

    def on_epoch_begin(self, epoch, logs=None):
        self.taken[f"begin{epoch}"] = self.take()

    def on_epoch_end(self, epoch, logs=None):
        self.taken[f"end{epoch}"] = self.take()


def changed(before, after, prefix=""):
    return {k for k in before if k.startswith(prefix) and not np.array_equal(before[k], after[k])}


def test_finetune_freezes_the_backbone_for_the_head_then_unfreezes_from_a_named_block(photos, tmp_path):
    reference = keras_h5(tmp_path / "imagenet.h5", "mobilenetv3_large")
    config = finetune_config(tmp_path / "run", "mobilenetv3_large", tmp_path / "imagenet.h5", photos,
                             "finetune.unfreeze_from=block_12")
    network = build_model("mobilenetv3_large", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.35)
    lines = []

    class Watch(Snapshots):
        def set_model(self, model):
            super().set_model(model)
            self.network = model.network

    watch = Watch(network)
    result = train(config, run_eagerly=True, verbose=0, callbacks=[watch], log=lines.append)
    assert any("keras.applications mobilenetv3_large weights" in line for line in lines), lines
    assert result.network.output_shape == (None, 3)  # a new head for the folder's 3 classes
    np.testing.assert_array_equal(watch.taken["begin0"]["stem/conv/kernel:0"], reference.get_layer("Conv").kernel)
    begin, head_done, end = watch.taken["begin0"], watch.taken["end0"], watch.taken["end1"]
    assert changed(begin, head_done) == {"logits/kernel:0", "logits/bias:0"}  # backbone and BN stats bit-identical
    moved = changed(head_done, end)
    assert not any(name.startswith(("stem/", "block_0/", "block_11/")) for name in moved), sorted(moved)
    assert any(name.startswith("block_12/") and "kernel" in name for name in moved)
    assert any(name.startswith("block_13/") and "moving_mean" in name for name in moved)  # BatchNorm trains again
    assert any("phase 2 from epoch 2: training from block_12 on" in line for line in lines), lines
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [3, 6]  # 18 training images of 24, batch 6
    assert all(r["val_accuracy"] for r in rows)  # validated on the held-out quarter of the folder
    rate = learning_rate_schedule(config, steps_per_epoch=3)
    assert [float(rate(step)) for step in (0, 2, 3, 5)] == pytest.approx([0.01, 0.01, 0.001, 0.001])


def test_phase_two_unfreezes_everything_by_default_and_names_are_checked():
    network = build_model("mobilenetv2", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.35)
    assert phase_layers(network, 1) == ["logits"]
    assert phase_layers(network, 2) == [layer.name for layer in network.layers]
    with pytest.raises(ConfigError, match="finetune.unfreeze_from='block_99' is not a layer of .* block_16"):
        phase_layers(network, 2, "block_99")


def test_lgc_model_starts_from_mobilenetv2_weights_and_condenses_while_fine_tuning(photos, tmp_path):
    reference = keras_h5(tmp_path / "v2.h5", "mobilenetv2")
    lgc = build_model("mobilenetv2_lgc", num_classes=1000, input_shape=(32, 32, 3), width_multiplier=0.35)
    load_starting_weights(lgc, "mobilenetv2_lgc", str(tmp_path / "v2.h5"), 0.35, (32, 32, 3), 1000)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)), tf.float32)
    np.testing.assert_allclose(lgc(images, training=False), reference(images / 127.5 - 1, training=False),
                               rtol=1e-4, atol=1e-4)  # every mask open: the dense network exactly
    config = finetune_config(tmp_path / "run", "mobilenetv2_lgc", tmp_path / "v2.h5", photos, "schedule.epochs=3",
                             "model.condense_factor=2", "lgc.lasso_decay=1e-5")
    lines = []
    result = train(config, run_eagerly=True, verbose=0, log=lines.append)
    assert np.mean([layer.sparsity() for layer in learned_group_convs(result.network)]) == pytest.approx(0.5)
    assert any("condensation stage 1/1 at step 6" in line for line in lines), lines  # half of phase 2 (3 + 6 / 2)


def test_bad_weights_are_one_line_errors(tmp_path):
    network = build_model("mobilenetv2", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.35)
    with pytest.raises(CheckpointError, match="neither 'imagenet' nor an existing"):
        load_starting_weights(network, "mobilenetv2", str(tmp_path / "missing.h5"), 0.35, (32, 32, 3), 3)
    with pytest.raises(CheckpointError, match="not a training run"):
        load_starting_weights(network, "mobilenetv2", str(tmp_path), 0.35, (32, 32, 3), 3)
    with pytest.raises(CheckpointError, match="keras.applications has no weights for 'igcv3'"):
        load_starting_weights(network, "igcv3", "imagenet", 0.35, (32, 32, 3), 3)  # refused before the model is touched


def write_colour_classes(path, palette, per_class=48, size=32, seed=0):
    """An .npz of one class per colour of `palette`, each image that colour plus heavy pixel noise."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([np.clip(np.array(c) + rng.normal(0, 40, (per_class, size, size, 3)), 0, 255)
                        for c in palette]).astype(np.uint8)
    np.savez(path, x=x, y=np.repeat(np.arange(len(palette)), per_class))
    return path


def steps_to_reach(run_dir, top1):
    """Optimizer steps after which validation top-1 first reached `top1` (inf: never)."""
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    return next((int(r["step"]) for r in rows if float(r["val_accuracy"]) >= top1), float("inf"))


def test_fine_tuned_from_a_run_of_ours_learns_new_classes_in_fewer_steps_than_from_scratch(tmp_path):
    # A run of ours learns 4 colours; fine-tuned from it (train.py --preset finetune --weights RUN_DIR),
    # the other 4 corners of the colour cube are learnt within 3 epochs (27 steps), which the same
    # network from scratch, same data, optimizer and steps, does not reach.
    corners = np.array(list(itertools.product((60, 190), repeat=3)))
    old = write_colour_classes(tmp_path / "old.npz", corners[[0, 3, 5, 6]], seed=1)
    new = write_colour_classes(tmp_path / "new.npz", corners[[1, 2, 4, 7]], seed=2)
    common = ["--model", "mobilenetv2", "--width", "0.35", "--dataset", "npz", "--batch-size", "16", "--lr", "0.005",
              "--verbose", "0"]
    sets = ["model.config=imagenet", "model.input_size=32", "model.num_classes=4", "model.bn_momentum=0.9",
            "model.dropout=0", "data.validation_fraction=0.25", "data.augmentation=none", "data.eval_crop_fraction=1",
            "optimizer.name=adam", "schedule.decay=constant", "run.checkpoint_every=100"]
    sets = [part for setting in sets for part in ("--set", setting)]
    scratch_flags = ["--preset", "smoke", "--set", "run.steps_per_epoch=null", "--set", "model.normalization=inception"]
    assert train_script.main([*common, *sets, *scratch_flags, "--data-dir", str(old), "--epochs", "8",
                              "--run-dir", str(tmp_path / "pretrained")]) == 0
    assert train_script.main([*common, *sets, "--preset", "finetune", "--weights", str(tmp_path / "pretrained"),
                              "--set", "finetune.head_epochs=1", "--set", "finetune.lr_factor=0.5", "--data-dir",
                              str(new), "--epochs", "3", "--run-dir", str(tmp_path / "finetuned")]) == 0
    assert train_script.main([*common, *sets, *scratch_flags, "--data-dir", str(new), "--epochs", "3",
                              "--run-dir", str(tmp_path / "scratch")]) == 0
    finetuned, scratch = steps_to_reach(tmp_path / "finetuned", 0.75), steps_to_reach(tmp_path / "scratch", 0.75)
    assert finetuned <= 27 and finetuned < scratch, (finetuned, scratch)
    with pytest.raises(CheckpointError, match="trained with model.normalization='inception', this model has 'cifar10'"):
        train(apply_overrides(get_preset("finetune"), [  # weights that would load silently into another input scaling
            f"model.weights={tmp_path / 'pretrained'}", "model.width_multiplier=0.35", "model.config=imagenet",
            "model.input_size=32", "model.normalization=cifar10", "data.dataset=npz", f"data.data_dir={new}",
            f"run.run_dir={tmp_path / 'mismatch'}"]), log=lambda *_: None)

"""AdamW (decoupled weight decay, Loshchilov & Hutter 2019) and the MobileNetV4 ImageNet presets
of the TF Model Garden's recipes (issues 14/15).

Fast on purpose: a toy model for the update rule, model construction without training for the
presets at their native resolution, and one tiny step of one preset on synthetic data.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from hparams import apply_overrides, describe_preset, get_preset, list_presets
from mobilenets.models.registry import build_model, native_input_shape
from mobilenets.training import Trainer
from mobilenets.training.optimization import AdamW, coupled_weight_decay, make_optimizer
from mobilenets.training.rundir import config_hash
from mobilenets.training.trainer import build_kwargs

V4_MODELS = ("mobilenetv4_conv_small", "mobilenetv4_conv_medium", "mobilenetv4_conv_large",
             "mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_large")
V4_PRESETS = tuple(f"imagenet_{model}" for model in V4_MODELS)


def quiet(*_):
    pass


def adamw_config(weight_decay, skip, lr=0.1, beta_1=0.6, epsilon=1e-3):
    return apply_overrides(get_preset("smoke"), [
        "optimizer.name=adamw", f"optimizer.lr={lr}", f"optimizer.momentum={beta_1}", f"optimizer.epsilon={epsilon}",
        f"regularization.weight_decay={weight_decay}",
        f"regularization.weight_decay_skip_bn_and_bias={str(skip).lower()}",
    ])


def toy_step(config):
    """One optimizer step on Dense(3) over 4 inputs; returns (w0, b0), (grad w, grad b), (w1, b1)."""
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(3, bias_initializer=keras.initializers.Constant(0.5))
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 4)), tf.float32)
    layer.build(x.shape)
    optimizer = make_optimizer(config, config.optimizer.lr)
    before = [v.numpy().copy() for v in (layer.kernel, layer.bias)]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x) - 1.0))
    grads = tape.gradient(loss, [layer.kernel, layer.bias])
    optimizer.apply_gradients(zip(grads, [layer.kernel, layer.bias]))
    return before, [g.numpy() for g in grads], [v.numpy() for v in (layer.kernel, layer.bias)]


def adam_first_update(g, beta_1, epsilon, beta_2=0.999):
    """tf_keras Adam's first step: m = (1 - b1) g, v = (1 - b2) g^2, and the step
    sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps)."""
    m, v = (1 - beta_1) * g, (1 - beta_2) * g * g
    return np.sqrt(1 - beta_2) / (1 - beta_1) * m / (np.sqrt(v) + epsilon)


@pytest.mark.parametrize("skip", [True, False])
def test_adamw_step_is_the_decoupled_closed_form(skip):
    lr, wd, beta_1, eps = 0.1, 0.05, 0.6, 1e-3
    config = adamw_config(wd, skip, lr, beta_1, eps)
    (w0, b0), (gw, gb), (w1, b1) = toy_step(config)
    np.testing.assert_allclose(w1, w0 - lr * (adam_first_update(gw, beta_1, eps) + wd * w0), rtol=1e-5, atol=1e-6)
    bias_decay = 0.0 if skip else wd * b0  # 1-D variables are not decayed with skip on
    np.testing.assert_allclose(b1, b0 - lr * (adam_first_update(gb, beta_1, eps) + bias_decay), rtol=1e-5,
                               atol=1e-6)
    # and the decay is really there: without it the kernel lands elsewhere
    assert np.abs(w1 - (w0 - lr * adam_first_update(gw, beta_1, eps))).max() > 1e-4


def test_adamw_has_no_l2_penalty_and_other_optimizers_keep_theirs():
    config = adamw_config(0.05, True)
    assert coupled_weight_decay(config) == 0.0
    optimizer = make_optimizer(config, 0.1)
    assert isinstance(optimizer, AdamW) and optimizer.weight_decay == pytest.approx(0.05)
    assert optimizer.get_config()["skip_bn_and_bias"] is True
    for name in ("sgd", "adam", "rmsprop"):
        assert coupled_weight_decay(apply_overrides(config, [f"optimizer.name={name}"])) == 0.05


def test_adamw_adds_no_new_setting_to_the_run_directory_hash():
    # optimizer.name is an existing key: every preset's run directory stays where it was
    smoke = get_preset("smoke")
    assert config_hash(smoke) == config_hash(apply_overrides(smoke, ["optimizer.name=sgd"]))
    assert config_hash(smoke) != config_hash(apply_overrides(smoke, ["optimizer.name=adamw"]))


@pytest.mark.parametrize("name", V4_PRESETS)
def test_v4_imagenet_preset_is_the_model_garden_recipe_and_builds_at_native_size(name):
    config = get_preset(name)
    model = name[len("imagenet_"):]
    assert name in list_presets()
    assert config.model.name == model and config.data.dataset == "imagenet"
    assert (config.model.input_size,) * 2 + (3,) == native_input_shape(model)
    assert config.optimizer.name == "adamw" and config.regularization.weight_decay > 0
    assert config.regularization.weight_decay_skip_bn_and_bias and config.regularization.label_smoothing == 0.1
    assert config.schedule.decay == "cosine" and config.schedule.warmup_epochs > 0
    assert config.data.auto_augment == "randaugment" and config.data.augmentation == "inception"
    description = describe_preset(name)
    assert "top-1" in description and "Model Garden" in description and "imagenet_" in description
    network = build_model(**build_kwargs(config, config.num_classes))
    assert network.input_shape == (None, *native_input_shape(model))
    assert network.output_shape == (None, 1000)


def test_v4_presets_values():
    small, medium, large, hybrid_m, hybrid_l = (get_preset(name) for name in V4_PRESETS)
    assert (small.optimizer.lr, small.optimizer.momentum, small.optimizer.epsilon) == (0.002, 0.6, 1e-6)
    assert (small.regularization.weight_decay, small.regularization.ema_decay) == (0.01, 0.9999)
    assert (small.schedule.batch_size, small.schedule.epochs, small.data.randaugment_magnitude) == (4096, 9600, 9.0)
    assert (medium.optimizer.lr, medium.regularization.weight_decay, medium.model.drop_path_rate) == (0.004, 0.1, 0.075)
    assert (large.schedule.batch_size, large.data.mixup_alpha, large.data.cutmix_alpha) == (16384, 0.8, 1.0)
    assert (large.data.mix_probability, hybrid_l.data.mix_probability) == (0.2, 0.3)
    assert (hybrid_m.optimizer.lr, hybrid_l.optimizer.lr, hybrid_l.schedule.min_lr) == (0.016, 0.01, 1e-5)
    assert hybrid_l.model.drop_path_rate == 0.35 and hybrid_l.regularization.weight_decay == 0.2


def test_v4_preset_trains_one_tiny_step_with_adamw_and_no_penalty(tmp_path):
    config = apply_overrides(get_preset("imagenet_mobilenetv4_conv_large"), [
        f"run.run_dir={tmp_path}", "data.dataset=synthetic", "data.synthetic_examples=16", "model.num_classes=10",
        "model.input_size=64", "model.width_multiplier=0.25", "schedule.batch_size=8", "schedule.epochs=1",
        "schedule.warmup_epochs=0", "run.steps_per_epoch=1", "run.log_every=1", "data.mix_probability=1.0",
    ])  # warm-up off: its first step has rate 0
    trainer = Trainer(config, run_eagerly=True, log=quiet)
    assert isinstance(trainer.classifier.optimizer, AdamW)
    assert trainer.classifier.weight_decay == 0.0 and float(trainer.classifier.penalty()) == 0.0
    before = [v.numpy().copy() for v in trainer.network.trainable_variables]
    result = trainer.fit(verbose=0)
    assert result.epochs_done == 1 and result.diverged is None
    assert np.isfinite(result.history[0]["loss"])
    assert int(trainer.classifier.optimizer.iterations) == 1
    after = trainer.network.trainable_variables
    assert any(np.abs(a.numpy() - b).max() > 0 for a, b in zip(after, before))

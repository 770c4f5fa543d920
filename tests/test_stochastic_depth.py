"""Stochastic depth (Huang et al. 2016): the linear rule over depth, identity at inference, whole
residual branches dropped in training at the configured rate, and the config path to the model."""

import numpy as np
import pytest
import tensorflow as tf

from hparams import apply_overrides, get_preset
from mobilenets.errors import ModelError
from mobilenets.models.layers import DropPath
from mobilenets.models.registry import build_model

RATE = 0.2


def blocks_of(model):
    return [layer for layer in model.layers if layer.name.startswith("block_")]


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3_small", "mobilenetv4_conv_small"])
def test_rates_rise_linearly_with_depth_and_only_residual_blocks_drop(name):
    model = build_model(name, num_classes=10, config="cifar", width_multiplier=0.25, drop_path_rate=RATE)
    blocks = blocks_of(model)
    assert len(blocks) > 3
    for index, block in enumerate(blocks):
        if not hasattr(block, "has_residual"):  # plain conv rows (MobileNetV4) have no branch to drop
            continue
        assert block.drop_path_rate == pytest.approx(RATE * (index + 1) / len(blocks))
        has_drop = isinstance(getattr(block, "drop_path", None), DropPath)
        assert has_drop == (block.has_residual and block.drop_path_rate > 0), block.name
    assert any(isinstance(getattr(block, "drop_path", None), DropPath) for block in blocks)


def test_identity_at_inference():
    plain = build_model("mobilenetv2", num_classes=10, config="cifar", width_multiplier=0.25)
    dropped = build_model("mobilenetv2", num_classes=10, config="cifar", width_multiplier=0.25, drop_path_rate=0.5)
    dropped.set_weights(plain.get_weights())
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(dropped(images, training=False).numpy(), plain(images, training=False).numpy())


def test_training_drops_whole_branches_at_the_rate_and_rescales_the_kept_ones():
    rate = 0.3
    model = build_model("mobilenetv2", num_classes=10, config="cifar", width_multiplier=0.5, drop_path_rate=0.9)
    block = next(b for b in blocks_of(model) if b.has_residual and b.drop_path_rate >= rate and b.expand is not None)
    block.drop_path.rate = rate
    x = tf.random.stateless_normal([2000, 8, 8, block.in_channels], seed=[1, 2])
    branch = block.project(block.depthwise(block.expand(x, training=True), training=True), training=True)
    y = block(x, training=True)
    dropped = np.all(np.isclose(y.numpy(), x.numpy(), atol=1e-6), axis=(1, 2, 3))
    kept = np.all(np.isclose(y.numpy(), (x + branch / (1 - rate)).numpy(), atol=1e-4), axis=(1, 2, 3))
    assert np.all(dropped | kept)  # every example either skips the whole branch or keeps it whole
    assert abs(dropped.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / len(dropped))


def test_config_reaches_the_model_and_bad_rates_fail_in_one_line():
    config = apply_overrides(get_preset("smoke"), ["model.drop_path_rate=0.1"])
    assert config.model.drop_path_rate == 0.1
    with pytest.raises(Exception, match="drop_path_rate"):
        apply_overrides(get_preset("smoke"), ["model.drop_path_rate=1.5"])
    with pytest.raises(ModelError, match="drop_path_rate"):
        build_model("mobilenetv2", num_classes=10, config="cifar", width_multiplier=0.25, drop_path_rate=-0.1)


def test_saved_model_reloads_with_its_drop_path(tmp_path):
    import tf_keras as keras

    model = build_model("mobilenetv2", num_classes=10, config="cifar", width_multiplier=0.25, drop_path_rate=0.2)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [b.drop_path_rate for b in blocks_of(loaded)] == [b.drop_path_rate for b in blocks_of(model)]
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), rtol=1e-5, atol=1e-5)

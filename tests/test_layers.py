"""Unit tests of the building-block layers against slow references."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mobilenets.models.blocks import DepthwiseSeparable, IGCV3Block, InvertedResidual
from mobilenets.errors import ModelError
from mobilenets.models.layers import (
    Activation,
    ChannelShuffle,
    ConvBNAct,
    DepthwiseBNAct,
    GroupConv2D,
    LearnedGroupConv,
    Normalize,
    SqueezeExcite,
    hard_swish,
    make_divisible,
)

RNG = np.random.default_rng(0)


def random_input(shape):
    return RNG.normal(size=shape).astype("float32")


@pytest.mark.parametrize("kernel_size,strides", [(1, 1), (3, 2)])
def test_group_conv_computes_what_keras_grouped_conv2d_does_with_the_same_gradients(kernel_size, strides):
    x = tf.constant(random_input((2, 9, 9, 8)))
    ours, reference = (layer(12, kernel_size, strides=strides, padding="same", groups=4, use_bias=False)
                       for layer in (GroupConv2D, keras.layers.Conv2D))
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(ours.get_weights())
    results = []
    for layer in (ours, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.range(12, dtype=tf.float32))
        results.append((y, *tape.gradient(loss, [x, layer.kernel])))
    for value, expected in zip(*results):
        np.testing.assert_allclose(value.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)  # summation order
    assert type(ConvBNAct(12, groups=4).conv) is GroupConv2D and type(ConvBNAct(12).conv) is keras.layers.Conv2D


def test_make_divisible_matches_tf_slim_rule():
    assert make_divisible(32 * 0.35) == 16  # would be 8, < 90% of 11.2
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(72) == 72
    assert make_divisible(4) == 8
    assert make_divisible(33.6) == 32


def test_hard_swish_reference():
    x = np.linspace(-5, 5, 101).astype("float32")
    expected = x * np.clip(x + 3, 0, 6) / 6
    np.testing.assert_allclose(hard_swish(tf.constant(x)).numpy(), expected, atol=1e-6)


def test_normalize_maps_pixels():
    layer = Normalize.named("inception")
    out = layer(tf.constant([[[[0.0, 127.5, 255.0]]]])).numpy().ravel()
    np.testing.assert_allclose(out, [-1.0, 0.0, 1.0], atol=1e-6)
    clone = Normalize.from_config(Normalize.named("cifar10").get_config())
    pixels = RNG.uniform(0, 255, (1, 2, 2, 3)).astype("float32")
    mean, std = np.array(clone.mean), np.array(clone.std)
    np.testing.assert_allclose(clone(pixels).numpy(), (pixels - mean) / std, rtol=1e-5, atol=1e-5)
    with pytest.raises(ModelError, match="choose one of"):
        Normalize.named("nope")


def test_channel_shuffle_is_reshape_transpose_flatten():
    x = random_input((1, 2, 2, 12))
    out = ChannelShuffle(3)(x).numpy()
    expected = x.reshape(1, 2, 2, 3, 4).transpose(0, 1, 2, 4, 3).reshape(1, 2, 2, 12)
    np.testing.assert_array_equal(out, expected)
    # channel 1 of group 0 lands after one channel of every group
    assert out[0, 0, 0, 3] == x[0, 0, 0, 1]


def test_squeeze_excite_reference():
    x = random_input((2, 3, 3, 8))
    layer = SqueezeExcite(4)
    out = layer(x).numpy()
    w1, b1, w2, b2 = layer.get_weights()
    pooled = x.mean(axis=(1, 2))
    hidden = np.maximum(pooled @ w1[0, 0] + b1, 0)
    gate = np.clip(hidden @ w2[0, 0] + b2 + 3, 0, 6) / 6
    np.testing.assert_allclose(out, x * gate[:, None, None, :], atol=1e-5)


def test_squeeze_excite_config_of_earlier_files_loads():
    """Files saved before the gate left the config hold gate='hard_sigmoid'; no other gate was ever saved."""
    config = {**SqueezeExcite(4, name="se").get_config(), "gate": "hard_sigmoid"}
    assert SqueezeExcite.from_config(config).get_config() == SqueezeExcite(4, name="se").get_config()
    with pytest.raises(ModelError, match="hard sigmoid"):
        SqueezeExcite(4, gate="relu6")


def slow_group_lasso(kernel_hwio, mask, groups):
    """sum_g sum_j sqrt(sum_{o: o mod G == g} (W*M)[j, o]^2), loop by loop."""
    weight = kernel_hwio[0, 0] * mask
    total = 0.0
    for g in range(groups):
        for j in range(weight.shape[0]):
            total += np.sqrt(sum(weight[j, o] ** 2 for o in range(weight.shape[1]) if o % groups == g))
    return total


@pytest.mark.parametrize("groups,condense_factor", [(4, 4), (2, 4), (8, 4), (4, 2)])
def test_learned_group_conv_lasso_and_condensation(groups, condense_factor):
    layer = LearnedGroupConv(16, groups, condense_factor)
    x = random_input((2, 3, 3, 16))
    layer(x)
    kernel = layer.kernel.numpy()
    np.testing.assert_allclose(
        layer.group_lasso().numpy(), slow_group_lasso(kernel, layer.mask.numpy(), groups), rtol=1e-5
    )
    for stage in range(condense_factor - 1):
        assert layer.condense_step()
        np.testing.assert_allclose(
            layer.group_lasso().numpy(), slow_group_lasso(kernel, layer.mask.numpy(), groups), rtol=1e-5
        )
    assert not layer.condense_step()  # all C - 1 stages done
    mask = layer.mask.numpy()
    assert mask.mean() == pytest.approx(1 / condense_factor)
    for g in range(groups):
        columns = mask[:, g::groups]
        assert (columns == columns[:, :1]).all()  # every output of a group reads the same inputs
        assert columns[:, 0].sum() == 16 // condense_factor
    # the kept inputs are the strongest ones of each group
    strength = np.abs(kernel[0, 0])
    for g, kept in enumerate(layer.kept_inputs()):
        importance = strength[:, g::groups].sum(axis=1)
        assert importance[kept].min() >= np.delete(importance, kept).max() - 1e-6 or condense_factor > 2
    # forward equals a dense conv with the masked kernel
    expected = np.einsum("bhwi,io->bhwo", x, kernel[0, 0] * mask)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


def test_learned_group_conv_rejects_indivisible_channels():
    with pytest.raises(ModelError, match="not divisible by groups"):
        LearnedGroupConv(10, groups=4)
    layer = LearnedGroupConv(8, groups=4, condense_factor=4)
    with pytest.raises(ModelError, match="condense_factor"):
        layer(random_input((1, 2, 2, 6)))


def test_inverted_residual_group_channels_error():
    with pytest.raises(ModelError, match="not divisible by groups=5"):
        InvertedResidual(16, expansion=6, expand_groups=5)(random_input((1, 4, 4, 16)))


LAYERS = [
    lambda: Activation("hswish"),
    lambda: ConvBNAct(8, 3, 2, activation="hswish"),
    lambda: ConvBNAct(8, 1, groups=4, activation="relu6"),
    lambda: ConvBNAct(8, 1, groups=2, condense_factor=4),
    lambda: DepthwiseBNAct(5, 2, "relu"),
    lambda: SqueezeExcite(8),
    lambda: ChannelShuffle(2),
    lambda: LearnedGroupConv(8, 4, 4),
    lambda: DepthwiseSeparable(16, 2),
    lambda: InvertedResidual(8, expansion=6, se_ratio=0.25, activation="hswish", kernel_size=5),
    lambda: InvertedResidual(8, expansion=1, expand=False),
    lambda: InvertedResidual(8, expansion=4, expand_groups=4, expand_condense_factor=4, project_groups=4, project_condense_factor=4),
    lambda: IGCV3Block(8, expansion=6, groups=2),
]


@pytest.mark.parametrize("make_layer", LAYERS)
def test_layer_serialization_round_trip(make_layer):
    layer = make_layer()
    x = random_input((2, 4, 4, 8))
    y = layer(x, training=False) if "training" in layer.call.__code__.co_varnames else layer(x)
    config = keras.layers.serialize(layer)
    clone = keras.layers.deserialize(config)
    clone(x)
    clone.set_weights(layer.get_weights())
    y2 = clone(x, training=False) if "training" in clone.call.__code__.co_varnames else clone(x)
    np.testing.assert_allclose(y.numpy(), y2.numpy(), atol=1e-6)
    assert clone.get_config() == layer.get_config()


def test_inverted_residual_structure():
    block = InvertedResidual(8, expansion=6, strides=1)
    block(random_input((1, 4, 4, 8)))
    assert block.has_residual and block.expanded_channels == 48
    strided = InvertedResidual(8, expansion=6, strides=2)
    assert strided(random_input((1, 4, 4, 8))).shape == (1, 2, 2, 8)
    assert not strided.has_residual
    igcv3 = IGCV3Block(16, expansion=6)
    igcv3(random_input((1, 4, 4, 16)))
    assert igcv3.expand.conv.groups == 2 and igcv3.project.conv.groups == 2 and igcv3.shuffle.groups == 2
    assert igcv3.expand.activation is None  # the first group conv is linear

"""MobileNetV4 (Qin et al. 2024): exact reference counts, the UIB / fused IB / Mobile MQA blocks, deployment.

Reference parameter counts (1000 classes) are the TF Model Garden backbone
(official/vision/modeling/backbones/mobilenet.py, tf-models-official 2.20, built
with tf_keras and counted) plus our 1280 -> 1000 classifier; they equal timm 1.0's
exactly. Multiply-adds (conv + fully-connected, attention matmuls not counted)
are timm's figures.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobilenets import build_model
from mobilenets.models.attention import MobileMQA
from mobilenets.models.blocks import FusedInvertedBottleneck, UniversalInvertedBottleneck
from mobilenets.models.builder import build
from mobilenets.deploy.flatten import flatten
from mobilenets.errors import ModelError
from mobilenets.models.costs import count
from mobilenets.models.layers import make_divisible
from mobilenets.models.registry import native_input_shape
from mobilenets.models.tables import Architecture, Stage
from mobilenets.training.precise_bn import recompute_batch_norm_statistics
from support import (SMALL, assert_float32_parity, calibrated_export, fit_classifier, quick_export, random_pixels,
                     trained_like)

V4 = ["mobilenetv4_conv_small", "mobilenetv4_conv_medium", "mobilenetv4_conv_large",
      "mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_large"]
HYBRID = ["mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_large"]
# name: (native side, Model Garden backbone params, + 1280x1000 classifier = timm 1.0 params, timm MAdds)
REFERENCE = {
    "mobilenetv4_conv_small": (224, 2_493_024, 3_774_024, 186.0e6),
    "mobilenetv4_conv_medium": (256, 8_434_512, 9_715_512, 1080.2e6),
    "mobilenetv4_conv_large": (384, 31_309_864, 32_590_864, 6376.2e6),
    "mobilenetv4_hybrid_medium": (256, 9_793_648, 11_074_648, 1229.2e6),
    "mobilenetv4_hybrid_large": (384, 36_483_624, 37_764_624, 7372.1e6),
}


@pytest.mark.parametrize("name", V4)
def test_parameters_and_multiply_adds_equal_the_references(name):
    side, backbone, params, madds = REFERENCE[name]
    model = build_model(name)
    assert model.input_shape[1:] == (side, side, 3) == native_input_shape(name)
    cost = count(model)
    assert cost.params == params == backbone + 1280 * 1000 + 1000
    assert abs(cost.madds - madds) <= 0.01 * madds
    assert abs(cost.madds - madds) <= 0.1e6  # in fact equal to timm's to the printed digit


@pytest.mark.parametrize("name", V4)
def test_cifar_configuration_unstrides_stem_and_next_two_downsamplings(name):
    model = build_model(name, **SMALL)
    assert model.input_shape[1:] == (32, 32, 3)
    assert model.get_layer("pool").input_shape[1:3] == (8, 8)  # 32 / 4, as the other CIFAR models
    assert model(random_pixels(2), training=False).shape == (2, 10)


def uib_params(cin, cout, t, start, middle):
    expanded = make_divisible(cin * t)
    total = (start * start * cin + 2 * cin) if start else 0
    total += cin * expanded + 2 * expanded
    total += (middle * middle * expanded + 2 * expanded) if middle else 0
    return total + expanded * cout + 2 * cout


@pytest.mark.parametrize("start, middle, instance", [(0, 3, "IB"), (3, 0, "ConvNext"), (5, 3, "ExtraDW"),
                                                     (0, 0, "FFN")])
@pytest.mark.parametrize("strides", [1, 2])
def test_uib_instances(start, middle, instance, strides):
    if strides == 2 and instance == "FFN":
        with pytest.raises(ModelError, match="FFN"):
            UniversalInvertedBottleneck(24, 4, start, middle, strides=strides)
        return
    block = UniversalInvertedBottleneck(24, 4, start, middle, strides=strides)
    x = tf.random.normal((2, 8, 8, 24))
    y = block(x, training=False)
    assert y.shape == (2, 8 // strides, 8 // strides, 24)
    assert block.has_residual == (strides == 1)
    params = sum(int(np.prod(w.shape)) for w in block.trainable_weights)
    assert params == uib_params(24, 24, 4, start, middle)
    # the stride is in the middle depthwise when there is one (Model Garden: middle_dw_downsample=True)
    if strides == 2:
        strided = block.middle_dw if middle else block.start_dw
        assert strided.strides == 2 and (block.start_dw is None or block.start_dw is strided or
                                         block.start_dw.strides == 1)
    # the residual add is the only difference between call and branch
    if block.has_residual:
        np.testing.assert_allclose(block(x, training=False), x + block.branch(x, training=False), atol=1e-6)


def test_fused_ib_and_layer_scale():
    block = FusedInvertedBottleneck(16, 4, 3, strides=1)
    x = tf.random.normal((1, 8, 8, 16))
    assert block(x).shape == (1, 8, 8, 16) and block.has_residual
    expanded = make_divisible(16 * 4)
    params = sum(int(np.prod(w.shape)) for w in block.trainable_weights)
    assert params == 9 * 16 * expanded + 2 * expanded + expanded * 16 + 2 * 16
    scaled = UniversalInvertedBottleneck(16, 2, 3, 3, layer_scale=True)
    scaled(x)
    np.testing.assert_allclose(scaled.scale.gamma.numpy(), 1e-5)  # Model Garden's layer_scale_init_value
    np.testing.assert_allclose(scaled(x, training=False), x, atol=1e-3)  # starts near the identity


def reference_attention(x, layer):
    """Mobile MQA computed head by head with numpy: the block's definition, slowly."""
    norm = layer.norm(x, training=False).numpy()
    q = layer.query(norm).numpy()
    k_in = layer.key_dw(norm, training=False).numpy() if layer.key_dw else norm
    v_in = layer.value_dw(norm, training=False).numpy() if layer.value_dw else norm
    k, v = layer.key(k_in).numpy(), layer.value(v_in).numpy()
    batch, height, width, _ = q.shape
    k = k.reshape(batch, -1, layer.key_dim)
    v = v.reshape(batch, -1, layer.value_dim)
    heads = []
    for head in range(layer.heads):
        qh = q[..., head * layer.key_dim:(head + 1) * layer.key_dim].reshape(batch, -1, layer.key_dim)
        logits = qh @ k.transpose(0, 2, 1) / np.sqrt(layer.key_dim)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        heads.append((weights @ v).reshape(batch, height, width, layer.value_dim))
    out = layer.output_proj(np.concatenate(heads, axis=-1)).numpy() * layer.scale.gamma.numpy()
    return x.numpy() + out


@pytest.mark.parametrize("kv_strides", [1, 2])
def test_mobile_mqa_equals_multi_query_attention_computed_per_head(kv_strides):
    layer = MobileMQA(heads=3, key_dim=8, value_dim=8, kv_strides=kv_strides)
    x = tf.random.normal((2, 6, 6, 16), seed=1)
    layer(x)
    layer.scale.gamma.assign(np.linspace(0.5, 1.5, 16))
    np.testing.assert_allclose(layer(x, training=False), reference_attention(x, layer), atol=1e-4)
    params = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    dw = 2 * (9 * 16 + 2 * 16) if kv_strides > 1 else 0
    assert params == 2 * 16 + 16 * 24 + 2 * 16 * 8 + 24 * 16 + dw + 16  # BN, q, k, v, output, [dw], layer scale


# ----- property test of the builder: random UIB rows -------------------------------------------------

def analytic_uib_model_params(stages, width, num_classes):
    total, channels = 0, 3
    for index, stage in enumerate(stages):
        out = make_divisible(stage.c * width)
        if stage.block == "conv":
            total += stage.k * stage.k * channels * out + 2 * out
            channels = out
            continue
        for _ in range(stage.n):
            total += uib_params(channels, out, stage.t, stage.start_dw_k, stage.middle_dw_k)
            total += out if stage.layer_scale else 0
            channels = out
    return total + channels * num_classes + num_classes


uib_rows = st.builds(
    lambda c, n, s, t, start, middle, scale: Stage("uib", c=c, n=n, s=s, t=t, start_dw_k=start, middle_dw_k=middle,
                                                   layer_scale=scale, act="relu"),
    c=st.integers(1, 48), n=st.integers(1, 2), s=st.sampled_from([1, 2]), t=st.sampled_from([0.5, 1, 2, 3.5, 4, 6]),
    start=st.sampled_from([0, 3, 5]), middle=st.sampled_from([0, 3, 5]), scale=st.booleans(),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(uib_rows, min_size=1, max_size=3), width=st.sampled_from([0.25, 0.5, 1.0, 1.3]),
       side=st.sampled_from([8, 16, 17]), num_classes=st.integers(1, 12))
def test_random_uib_rows_build_with_the_analytic_count_or_fail_in_one_line(rows, width, side, num_classes):
    stages = (Stage("conv", c=16, s=2, k=3, act="relu"), *rows)
    arch = Architecture(name="random_uib", paper="property test", stages=stages)
    try:
        model = build(arch, num_classes=num_classes, input_shape=(side, side, 3), width_multiplier=width)
    except ModelError as error:
        assert "\n" not in str(error) and str(error)
        assert any(row.s > 1 and not (row.start_dw_k or row.middle_dw_k) for row in rows)  # the only invalid rows
        return
    assert not any(row.s > 1 and not (row.start_dw_k or row.middle_dw_k) for row in rows)
    assert count(model).params == analytic_uib_model_params(stages, width, num_classes)


def test_bad_rows_fail_in_one_line():
    mqa = Architecture(name="bad", paper="-", stages=(Stage("conv", c=16, s=2), Stage("mqa", c=24, heads=2, key_dim=8)))
    with pytest.raises(ModelError, match="keeps its input's shape") as error:
        build(mqa, input_shape=(32, 32, 3))
    assert "\n" not in str(error.value)
    unknown = Architecture(name="bad", paper="-", stages=(Stage("conv", c=16, s=2), Stage("resnet", c=24)))
    with pytest.raises(ModelError, match="unknown block type 'resnet'"):
        build(unknown, input_shape=(32, 32, 3))
    with pytest.raises(ModelError, match="has no expansion ratio"):
        build_model("mobilenetv4_conv_small", expansion=4)


# ----- save / reload and deployment --------------------------------------------------------------

@pytest.fixture(scope="module")
def hybrid():
    keras.utils.set_random_seed(0)
    model = build_model("mobilenetv4_hybrid_medium", **SMALL)
    for layer in model.submodules:  # layer scales as after training, not at their 1e-5 start
        if type(layer).__name__ == "LayerScale":
            layer.gamma.assign(np.full(layer.gamma.shape, 0.1, np.float32))
    recompute_batch_norm_statistics(model, random_pixels(16, seed=1))
    fit_classifier(model)  # confident, separated logits, as after training (int8 agreement)
    return model


@pytest.mark.parametrize("filename, save_kwargs", [("model.h5", {}), ("saved_model", {"save_traces": False})])
def test_h5_and_saved_model_round_trips(hybrid, filename, save_kwargs, tmp_path):
    pixels = random_pixels(2, seed=3)
    expected = hybrid(pixels, training=False).numpy()
    hybrid.save(str(tmp_path / filename), **save_kwargs)
    reloaded = keras.models.load_model(str(tmp_path / filename))
    np.testing.assert_allclose(reloaded(pixels, training=False).numpy(), expected, atol=1e-6)


def test_flat_graph_of_the_hybrid_computes_the_same(hybrid):
    """QAT's flat graph: layer scales folded into BatchNorm / the output conv, MQA's BatchNorm as a 1x1 depthwise
    (on a copy whose BatchNorms have gamma and beta as training leaves them, not their initial 1 and 0)."""
    model = keras.models.clone_model(hybrid)
    model.set_weights(hybrid.get_weights())
    rng = np.random.default_rng(3)
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.gamma is not None:
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype(np.float32))
            layer.beta.assign(rng.normal(0.0, 0.1, layer.beta.shape).astype(np.float32))
    recompute_batch_norm_statistics(model, random_pixels(16, seed=1))  # else activations grow to 1e2 through the depth
    images = random_pixels(4, seed=2)
    expected = model(images, training=False).numpy()
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(flatten(model)(images, training=False), expected, atol=1e-4 * np.abs(expected).max())


def test_hybrid_float32_export_runs_every_op_in_xnnpack(hybrid, tmp_path):
    report = quick_export(hybrid, tmp_path / "hybrid.tflite")
    assert report.undelegated == {}
    assert_float32_parity(report)
    assert report.ops["BATCH_MATMUL"] == 2 * 8 and report.ops["SOFTMAX"] == 8 + 1  # 8 MQA blocks + probabilities


@pytest.fixture(scope="module")
def conv_small():
    return trained_like("mobilenetv4_conv_small")


@pytest.mark.parametrize("quantize", ["int8", "float16", "dynamic"])
def test_conv_small_quantized_exports_agree_and_run_in_xnnpack(conv_small, quantize, tmp_path):
    report = calibrated_export(conv_small, tmp_path / f"{quantize}.tflite", quantize, images=32, logits=True)
    assert report.parity.top1_agreement >= 0.8
    if quantize in ("int8", "float16"):
        assert report.undelegated == {}


@pytest.mark.slow
def test_conv_small_qat_exports(conv_small, tmp_path):
    report = calibrated_export(conv_small, tmp_path / "qat.tflite", "qat", images=32, logits=True, qat_steps=2,
                               qat_batch_size=8)
    assert all(np.isfinite(report.qat_loss)) and report.undelegated == {}
    assert report.parity.top1_agreement >= 0.75

"""The deployed graph: XNNPACK runs every op of every model, LGC runs export converted, IGCV3 without shuffles.

Small models (CIFAR config, 32x32, width 0.35) with BatchNorm statistics from a
batch, so that logits are O(1) and int8 ranges are those of a trained model
(with the initial statistics activations grow through the depth, and XNNPACK
refuses int8 adds whose input and output scales are too far apart).
"""

import numpy as np
import pytest
import tf_keras as keras

from mobilenets.commands import export as export_tflite
from mobilenets import build_model
from mobilenets.models.attention import MobileMQA
from mobilenets.models.condensation import learned_group_convs
from mobilenets.commands import profile as profile_command
from mobilenets.deploy import profile
from mobilenets.deploy.convert import convert_learned_group_model
from mobilenets.deploy.activations import int8_activation_forms
from mobilenets.deploy.folding import fold_channel_shuffles, fold_hard_swish_scale
from mobilenets.deploy.flatten import flatten
from mobilenets.deploy.litert import op_summary
from mobilenets.models.costs import count
from mobilenets.models.layers import leaf_layers
from mobilenets.models.layers import Activation, ChannelShuffle, ConvBNAct, DepthwiseBNAct
from models_under_test import models_under_test
from support import (SMALL, assert_float32_parity, calibrated_export, quick_export, random_pixels, trained_like,
                     write_run)


# Every int8 file against its float Keras model on PARITY_IMAGES images the calibration did not use: top-1
# agreement and probability correlation at least these. trained_like's models are random backbones under a
# least-squares classifier, whose int8 files agree less than a trained model's (97%: README): 0.80-1.0 and
# 0.84-1.0 on these images; an int8 file calibrated wrongly or computing another graph scores ~0.1 and ~0.
PARITY_IMAGES = 64
INT8_TOP1, INT8_CORRELATION = 0.7, 0.75


@pytest.mark.parametrize("name", models_under_test())
def test_xnnpack_runs_every_op_of_every_deployed_model_in_int8(name, tmp_path):
    """float32: tests/test_export.py::test_every_model_exports_float32_matching_keras_on_raw_pixels."""
    model = trained_like(name)
    deployed_form = bool(learned_group_convs(model)) or name == "igcv3"  # converted / unshuffled for the phone
    images = 64 if deployed_form else 16
    report = calibrated_export(model, tmp_path / "model.tflite", images=images, parity_images=PARITY_IMAGES)
    assert report.undelegated == {}, f"{name}: {report.undelegated} left to TFLite kernels"
    attention_blocks = sum(isinstance(layer, MobileMQA) for layer in model.submodules)  # float32 softmax each
    assert report.ops["SOFTMAX"] == 1 + attention_blocks  # probabilities, in float32 after the DEQUANTIZE
    if attention_blocks:  # int8 everywhere but Mobile MQA's two matmuls and softmax, kept in float32 (delegated)
        assert report.ops["BATCH_MATMUL"] == 2 * attention_blocks
    assert not {"GATHER", "TRANSPOSE", "HARD_SWISH", *([] if attention_blocks else ["RESHAPE"])} & set(report.ops)
    if deployed_form:  # the int8 file of the deployed form against the Keras model as trained (masked, shuffled)
        assert report.deployment.startswith(("converted", "channel shuffles folded into dense"))
    if name in ("mobilenetv3_large", "mobilenetv3_small"):
        assert report.deployment.startswith("h-swish as x * relu6(x + 3)")
    assert report.parity.images == PARITY_IMAGES and report.parity.output == "probabilities"
    top1 = 0.8 if deployed_form or attention_blocks else INT8_TOP1  # 0.86-1.0 for these
    assert report.parity.top1_agreement >= top1 and report.parity.logit_correlation >= INT8_CORRELATION, (
        name, report.parity)


def test_float32_v3_keeps_the_fused_hard_swish(tmp_path):
    report = quick_export(trained_like("mobilenetv3_small"), tmp_path / "v3.tflite", parity_images=4)
    assert report.ops["HARD_SWISH"] > 0 and report.undelegated == {}
    assert_float32_parity(report)


def test_an_lgc_run_exports_its_deployed_form_and_keep_masks_the_masked_one(tmp_path, capsys):
    model = trained_like("mobilenetv2_lgc")
    write_run(tmp_path / "run", model, dict(name="mobilenetv2_lgc", **SMALL))
    deployed, masked = tmp_path / "deployed.tflite", tmp_path / "masked.tflite"
    common = ["--parity-images", "8", "--latency-runs", "2", "--representative-data", "synthetic"]
    assert export_tflite.main([str(tmp_path / "run"), "-o", str(deployed), *common]) == 0
    printed = capsys.readouterr().out
    assert "deployed as" in printed and "converted learned group convs" in printed
    condensed_madds = count(model).madds / 1e6
    assert f"{condensed_madds:.1f}M after condensation" in printed and "M multiply-adds deployed" in printed
    assert export_tflite.main([str(tmp_path / "run"), "-o", str(masked), "--keep-masks", *common]) == 0
    assert "masked learned group convs (--keep-masks)" in capsys.readouterr().out
    for path in (deployed, masked):  # both equal the masked model (parity checked in export) and hold no gather
        assert "GATHER" not in op_summary(str(path))


def test_an_uncondensed_lgc_model_is_exported_masked_only_on_request(tmp_path):
    model = build_model("mobilenetv2_lgc", **SMALL)
    with pytest.raises(Exception, match="not fully condensed.*--keep-masks") as error:
        quick_export(model, tmp_path / "model.tflite", parity_images=4)
    assert "\n" not in str(error.value)
    report = quick_export(model, tmp_path / "model.tflite", parity_images=4, keep_masks=True)
    assert report.undelegated == {}


@pytest.mark.parametrize("dense", [False, True])
def test_igcv3_shuffles_fold_into_weights_exactly(dense):
    model = trained_like("igcv3")
    folded = fold_channel_shuffles(model, dense=dense)
    assert not any(isinstance(layer, ChannelShuffle) for layer in leaf_layers(folded))
    images = random_pixels(8, seed=3)
    expected = model(images, training=False).numpy()
    difference = np.abs(folded(images, training=False).numpy() - expected).max()
    assert np.abs(expected).max() > 0.1 and difference <= 1e-4 * max(1.0, np.abs(expected).max())


def test_profile_times_every_op_and_sums_by_kind(tmp_path, capsys):
    path = tmp_path / "v2.tflite"
    quick_export(trained_like("mobilenetv2"), path, parity_images=4)
    rows, whole_ms, partitions, left = profile.profile(str(path), runs=3, warmup=1)
    ops = op_summary(str(path))
    assert len(rows) == sum(ops.values()) and partitions == 1 and left == {}
    assert all(row.milliseconds > 0 and row.delegated for row in rows)
    assert whole_ms > 0
    assert profile_command.main([str(path), "--runs", "2", "--by-kind"]) == 0
    printed = capsys.readouterr().out
    for name, number in ops.items():
        assert any(line.split()[:2] == [name, str(number)] for line in printed.splitlines())
    assert profile_command.main([str(path), "--runs", "2", "--top", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2 + 3


def test_profile_of_a_corrupt_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"not a flatbuffer")
    assert profile_command.main([str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: cannot profile") and "\n" not in error


@pytest.mark.parametrize("name", ["mobilenetv2_lgc", "igcv3"])
def test_flat_graph_of_the_deployed_form_computes_the_same(name):
    """QAT quantizes the flat graph (mobilenets.deploy.flatten): selection convs and input copies must survive it."""
    model = trained_like(name)
    deployed = (fold_channel_shuffles(model) if name == "igcv3"
                else convert_learned_group_model(model, block_form="expand_grouped"))
    flat = flatten(deployed)
    images = random_pixels(4, seed=2)
    np.testing.assert_allclose(flat(images, training=False), deployed(images, training=False), atol=1e-4)


@pytest.mark.parametrize("name", sorted({"mobilenetv2_lgc", "mobilenetv2_lgc_proj", "mobilenetv2_gc_lgc", "igcv3"}
                                         - set(models_under_test())))
def test_int8_deployed_models_agree_on_top1(name, tmp_path):
    """The int8 file of the converted / unshuffled model against the Keras model as trained (masked, shuffled);
    the models under test get the same check in test_xnnpack_runs_every_op_of_every_deployed_model_in_int8."""
    report = calibrated_export(trained_like(name), tmp_path / "int8.tflite", images=64, logits=True)
    assert report.deployment.startswith(("converted", "channel shuffles")) and report.undelegated == {}
    assert report.parity.images == 64 and report.parity.output == "logits"
    assert report.parity.top1_agreement >= 0.8 and report.parity.logit_correlation >= 0.9, report.parity


@pytest.mark.parametrize("name, width", [("mobilenetv3_small", 0.35), ("mobilenetv3_large", 0.35),
                                         ("mobilenetv3_large", 1.0)])
def test_hard_swish_scale_folds_into_the_next_kernels_exactly(name, width):
    """int8 V3: 6 * h-swish = x * relu6(x + 3), two ops; the 1/6 in what reads it (residual adds included: at
    width 1.0, V3-Large's first block adds its input, the stem's h-swish, so it sums 6x on both sides)."""
    model = trained_like(name, width_multiplier=width)
    rng = np.random.default_rng(1)
    for layer in model.submodules:  # BatchNorm offsets as training leaves them, not 0 (a fold that drops one shows)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.beta.assign(rng.normal(0.0, 0.1, layer.beta.shape).astype(np.float32))
    folded = fold_hard_swish_scale(model)
    def activations(network):  # of the layers that apply one (blocks only pass theirs on)
        return [layer.activation for layer in network.submodules if isinstance(layer, (ConvBNAct, DepthwiseBNAct,
                                                                                        Activation))]

    assert "hswish" not in activations(folded) and "hswish_x6" in activations(folded)
    assert "hswish" in activations(model)  # the model itself is left alone
    images = random_pixels(8, seed=4)
    expected = model(images, training=False).numpy()
    assert np.abs(folded(images, training=False).numpy() - expected).max() <= 1e-5 * np.abs(expected).max()


def test_int8_activation_forms_stand_in_only_inside_their_context():
    """What int8 exports trace: h-swish in other ops, same values; GELU as x * sigmoid(1.702 x), within 0.021."""
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    exact = {name: Activation(name)(x).numpy() for name in ("hswish", "gelu")}
    with int8_activation_forms():
        inside = {name: Activation(name)(x).numpy() for name in ("hswish", "gelu")}
    np.testing.assert_allclose(inside["hswish"], exact["hswish"], atol=1e-6)
    assert 0.01 < np.abs(inside["gelu"] - exact["gelu"]).max() < 0.021
    np.testing.assert_array_equal(Activation("gelu")(x).numpy(), exact["gelu"])  # the exact forms again after


def test_flat_graph_of_the_folded_v3_computes_the_same():
    folded = fold_hard_swish_scale(trained_like("mobilenetv3_small"))
    images = random_pixels(4, seed=5)
    expected = folded(images, training=False).numpy()
    np.testing.assert_allclose(flatten(folded)(images, training=False), expected, atol=1e-4 * np.abs(expected).max())

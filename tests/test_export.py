"""TFLite export: every model and mode against its Keras model, metadata, atomic writes, one-line errors.

Small models (CIFAR config, 32x32, width 0.35) on generated data. Random
models get their BatchNorm statistics from a batch first, so their logits are
O(1) and the parity bounds can fail; quantized files are held to a top-1
agreement and a logit correlation with the float model (QAT without its range
initialization scores 0.4 correlation: the bound catches it). The real-image
figures are benchmarks/quantization_accuracy.py's.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mobilenets.commands import export as export_tflite
from mobilenets.models.attention import has_attention
from mobilenets.errors import ConfigError, DataError, ExportError
from mobilenets.deploy.export import FLOAT32_TOLERANCE, read_metadata
from mobilenets.learning import WHAT_TO_TRY
from mobilenets.deploy.flatten import flatten
from mobilenets.deploy.quantization import quantize_aware_model
from models_under_test import models_under_test
from mobilenets import build_model
from mobilenets.training.precise_bn import recompute_batch_norm_statistics
from support import (SMALL, assert_float32_parity, assert_quantized_file_agrees, calibrated_export, condensed_lgc,
                     file_against_keras, held_out_images, quick_export, random_pixels, small_model, write_run)


def leftovers(directory):
    return sorted(name for name in os.listdir(directory))


@pytest.mark.parametrize("name", models_under_test())
def test_every_model_exports_float32_matching_keras_on_raw_pixels(name, tmp_path):
    model = small_model(name)
    report = quick_export(model, tmp_path / "model.tflite")
    assert report.parity.max_abs_logit > 0.1  # the bound below can fail
    assert_float32_parity(report)
    assert report.parity.image_source == "uniform random pixels"
    # Conv + BatchNorm + ReLU/ReLU6 fuse into one op: no activation or BatchNorm arithmetic left over.
    assert not {"RELU", "RELU6"} & set(report.ops)
    assert report.undelegated == {}  # XNNPACK runs every op (int8: tests/test_deploy.py)
    # LGC converted, IGCV3 shuffles folded; Mobile MQA's heads are static-shape RESHAPEs (XNNPACK runs them)
    assert not {"GATHER", "TRANSPOSE", *([] if has_attention(model) else ["RESHAPE"])} & set(report.ops)
    assert report.size_bytes == os.path.getsize(tmp_path / "model.tflite")
    assert leftovers(tmp_path) == ["model.tflite", "model.tflite.json"]
    # the file run here on other images, not by export's own parity check: the same probabilities and top-1
    check = file_against_keras(tmp_path / "model.tflite", model, random_pixels(8, seed=7), probabilities=True)
    assert check.max_abs_diff <= FLOAT32_TOLERANCE and check.top1_agreement == 1.0, check.max_abs_diff


@pytest.mark.parametrize("name", ["mobilenetv1", "mobilenetv3_small", "igcv3", "mobilenetv2_gc_lgc", "converted lgc"])
def test_flat_graph_of_standard_layers_computes_the_same(name):
    model = condensed_lgc() if name == "converted lgc" else small_model(name)
    flat = flatten(model)
    assert all(not isinstance(layer, keras.Model) for layer in flat.layers)
    custom = {type(layer).__name__ for layer in flat.layers if not type(layer).__module__.startswith("tf_keras.")}
    assert custom <= {"Normalize", "Activation"}
    images = random_pixels(4, seed=2)
    np.testing.assert_allclose(flat(images, training=False), model(images, training=False), atol=1e-5)


def test_metadata_travels_with_the_file(tmp_path):
    model = small_model("mobilenetv1", normalization="cifar10")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(10)) + "\n")
    report = quick_export(model, tmp_path / "v1.tflite", labels=str(labels))
    embedded = read_metadata(report.output)
    sidecar = json.loads((tmp_path / "v1.tflite.json").read_text())
    assert embedded["input"]["shape"] == [1, 32, 32, 3]
    assert embedded["input"]["pixel_range"] == [0, 255]
    assert embedded["input"]["normalization"]["mean"] == pytest.approx([125.307, 122.95, 113.865])
    assert embedded["labels"] == [f"class {i}" for i in range(10)]
    assert embedded["quantization"] == "none"
    assert embedded["output"]["kind"] == "probabilities" and report.ops["SOFTMAX"] == 1
    assert sidecar["labels"] == embedded["labels"] and sidecar["report"]["size_bytes"] == report.size_bytes


def test_float16_matches_within_one_percent(tmp_path):
    model = small_model("mobilenetv3_small")
    report = quick_export(model, tmp_path / "f16.tflite", quantize="float16", logits=True)
    assert report.parity.output == "logits" and "SOFTMAX" not in report.ops  # --logits: raw logits out
    assert read_metadata(report.output)["output"]["kind"] == "logits"
    assert report.parity.max_abs_diff <= 1e-2 * max(1.0, report.parity.logit_range)
    assert report.parity.max_abs_diff > FLOAT32_TOLERANCE  # the weights really are float16
    assert report.size_bytes < 2.5 * model.count_params()  # 2 bytes a weight
    check = file_against_keras(report.output, model, random_pixels(16, seed=7), probabilities=False)  # run here
    assert FLOAT32_TOLERANCE < check.max_abs_diff <= 1e-2 * max(1.0, check.value_range), check.max_abs_diff
    assert check.top1_agreement >= 15 / 16


def quantized_export(path, quantize, **kwargs):
    """Logits out: their correlation measures the quantization (tests/test_mediapipe.py checks probabilities)."""
    return calibrated_export(small_model("mobilenetv3_small"), path, quantize, images=64, logits=True, **kwargs)


def test_int8_agrees_with_float_model(tmp_path):
    report = quantized_export(tmp_path / "int8.tflite", "int8", int8_io=True)
    assert report.parity.logit_correlation >= 0.99
    assert report.parity.top1_agreement >= 0.8
    # the int8-in, int8-out file run here (its own scales) on 64 images neither calibration nor export read
    assert_quantized_file_agrees(report.output, small_model("mobilenetv3_small"), held_out_images(64),
                                 probabilities=False, top1=0.8, correlation=0.99)
    assert report.parity.image_source.startswith("synthetic")
    assert "QUANTIZE" not in report.ops and "DEQUANTIZE" not in report.ops  # full integer, int8 in and out
    # h-swish as MUL, ADD+RELU6, MUL: XNNPACK (LiteRT 2.3) runs no int8 HARD_SWISH (see layers.hard_swish).
    assert "HARD_SWISH" not in report.ops and report.undelegated == {}
    assert report.parity.output == "logits"
    metadata = json.loads((tmp_path / "int8.tflite.json").read_text())
    assert metadata["input"]["dtype"] == "int8" and metadata["input"]["quantization"]["scale"] > 0
    assert report.calibration == "64 images of synthetic training split"


@pytest.mark.slow
def test_qat_fine_tunes_and_agrees_with_float_model(tmp_path):
    report = quantized_export(tmp_path / "qat.tflite", "qat", qat_steps=3, qat_batch_size=16)
    assert report.qat_steps == 3 and all(np.isfinite(report.qat_loss))
    assert report.parity.logit_correlation >= 0.98
    assert report.parity.top1_agreement >= 0.75
    assert_quantized_file_agrees(report.output, small_model("mobilenetv3_small"), held_out_images(64),
                                 probabilities=False, top1=0.75, correlation=0.98)  # run here, not by export
    # int8 inside (squeeze-excite and h-swish as MUL / ADD+RELU6), float32 in and out, all of it in XNNPACK
    assert report.ops.get("QUANTIZE") == 1 and report.ops.get("DEQUANTIZE") == 1
    assert "HARD_SWISH" not in report.ops and report.undelegated == {}


def test_dynamic_range_quantizes_weights(tmp_path):
    model = small_model("mobilenetv1")
    report = quick_export(model, tmp_path / "dynamic.tflite", quantize="dynamic", parity_images=32)
    assert report.parity.top1_agreement >= 0.75 and report.parity.logit_correlation >= 0.95
    assert report.size_bytes < 0.4 * 4 * model.count_params()
    assert_quantized_file_agrees(report.output, model, random_pixels(32, seed=7), probabilities=True, top1=0.75,
                                 correlation=0.95)  # run here, on other images


def test_qat_rejects_a_layer_it_cannot_quantize():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="doubling")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(outputs)))
    with pytest.raises(ExportError, match="doubling"):
        quantize_aware_model(model)


class Bessel(keras.layers.Layer):
    """An op with no TFLite builtin kernel."""

    def call(self, inputs):
        return tf.math.bessel_i1e(inputs)


def test_unconvertible_layer_is_a_one_line_error_and_leaves_no_file(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(Bessel()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(ExportError) as error:
        quick_export(model, tmp_path / "bad.tflite")
    assert "\n" not in str(error.value) and "TFLite cannot convert" in str(error.value)
    assert leftovers(tmp_path) == []


def test_failed_check_leaves_no_file(tmp_path):
    model = small_model("mobilenetv1")
    (tmp_path / "kept.tflite").write_bytes(b"previous export")
    with pytest.raises(ExportError, match="agrees"):
        quick_export(model, tmp_path / "kept.tflite", quantize="dynamic", min_agreement=1.01)
    assert leftovers(tmp_path) == ["kept.tflite"]
    assert (tmp_path / "kept.tflite").read_bytes() == b"previous export"


def test_representative_data_of_the_wrong_shape(tmp_path):
    np.savez(tmp_path / "images.npz", x=np.zeros((8, 64, 64, 3), np.uint8))
    model = small_model("mobilenetv1")
    with pytest.raises(DataError, match=r"\(N, 32, 32, 3\)"):
        quick_export(model, tmp_path / "out.tflite", quantize="int8", representative_data=str(tmp_path / "images.npz"))
    assert leftovers(tmp_path) == ["images.npz"]


@pytest.mark.parametrize("options, message", [
    ({"quantize": "int8", "int8_io": True, "uint8_io": True}, "exclude each other"),
    ({"quantize": "float16", "uint8_io": True}, "--uint8-io needs --quantize int8"),
])
def test_integer_io_options_are_checked_before_anything_runs(options, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        quick_export(small_model("mobilenetv1"), tmp_path / "out.tflite", **options)
    assert leftovers(tmp_path) == []


def test_int8_without_representative_data(tmp_path):
    with pytest.raises(ConfigError, match="--representative-data"):
        quick_export(small_model("mobilenetv1"), tmp_path / "out.tflite", quantize="int8")


def test_missing_run_directory(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        quick_export(str(tmp_path / "no_such_run"), tmp_path / "out.tflite")
    assert leftovers(tmp_path) == []


def test_run_directory_source_with_npz_calibration(tmp_path):
    from mobilenets import runs

    run = tmp_path / "run"
    spec = {"name": "mobilenetv1", **SMALL}
    runs.save_model_spec(str(run), **spec)
    model = small_model("mobilenetv1")
    tf.train.Checkpoint(model=model).save(str(run / "best" / "ckpt"))
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "cifar10", "data_dir": None}}))
    np.savez(tmp_path / "calibration.npz", x=random_pixels(48, seed=3).astype(np.uint8))
    calibration = str(tmp_path / "calibration.npz")
    report = quick_export(str(run), tmp_path / "v1.tflite", quantize="int8", representative_data=calibration,
                          calibration_images=16, parity_images=32)
    assert report.source.endswith("(run)")
    assert read_metadata(report.output)["labels"][0] == "airplane"  # the run's dataset names its classes
    assert report.parity.image_source.endswith("calibration.npz") and report.parity.images == 32
    assert report.parity.top1_agreement >= 0.75 and report.parity.logit_correlation >= 0.9, report.parity


def test_cli_prints_one_line_error_and_exits_non_zero(tmp_path, capsys):
    assert export_tflite.main([str(tmp_path / "missing_run"), "-o", str(tmp_path / "x.tflite")]) != 0
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "does not exist" in error and len(error.strip().splitlines()) == 1
    assert leftovers(tmp_path) == []


def test_cli_exports_a_model_name(tmp_path, capsys):
    output = tmp_path / "v1.tflite"
    arguments = ["mobilenetv1", "--config", "cifar", "--num-classes", "10", "--width-multiplier", "0.35"]
    assert export_tflite.main([*arguments, "-o", str(output), "--latency-runs", "2", "--threads", "2"]) == 0
    printed = capsys.readouterr().out
    assert "max |probability diff|" in printed and "2 thread(s)" in printed
    assert "ImageClassifier takes it" in printed and "metadata: labels" in printed
    assert read_metadata(str(output))["source"] == "mobilenetv1 (random init)"


def test_a_run_still_training_is_exported_from_its_checkpoint_with_one_line_saying_which(tmp_path, capsys):
    """While the trainer holds the run's lock: before its first checkpoint, one line to wait (it used to say the
    run was no run directory); after, its checkpoint is exported and a line says which, of which epoch (it used
    to say nothing)."""
    from mobilenets.training import lock

    run, output = tmp_path / "run", tmp_path / "v1.tflite"
    argv = [str(run), "-o", str(output), "--latency-runs", "2", "--parity-images", "4"]
    lock.acquire(str(run))  # the training process (this one) holds it from its start
    try:
        assert export_tflite.main(argv) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"error: {run} is still training") and "\n" not in error
        assert "no checkpoint yet" in error and "wait" in error
        spec = {"name": "mobilenetv1", **SMALL}
        write_run(run, small_model("mobilenetv1"), spec)
        epoch = tf.Variable(3, dtype=tf.int64)
        tf.train.Checkpoint(model=small_model("mobilenetv1"), epoch=epoch).save(str(run / "best" / "ckpt"))
        assert export_tflite.main(argv) == 0
    finally:
        lock.release(str(run))
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == (f"note: {run} is still training: exported its checkpoint {run / 'best' / 'ckpt-1'} (after "
                           "epoch 3); export again when the run ends for its final weights"), printed
    assert output.stat().st_size > 0


def v1_with_classifier(classifier):
    """A SMALL MobileNetV1 of its own (BatchNorm statistics from a batch) whose classifier's kernel is
    `classifier(kernel shape)`, its bias 0."""
    keras.utils.set_random_seed(0)
    model = recompute_batch_norm_statistics(build_model("mobilenetv1", **SMALL), random_pixels(16, seed=1))
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([classifier(kernel.shape).astype(np.float32), np.zeros_like(bias)])
    return model


def tied_logits_model():
    """MobileNetV1 whose logits are one large image-dependent value shared by every class plus 1e-4 of a
    class's own: the int8 output's scale, set by the shared part, cannot tell the classes apart."""
    rng = np.random.default_rng(0)
    return v1_with_classifier(lambda shape: rng.normal(0.0, 1.0, (shape[0], 1)) + 1e-4 * rng.normal(size=shape))


def test_a_quantized_file_that_disagrees_is_one_warning_line_and_min_agreement_refuses_it(tmp_path, capsys):
    write_run(tmp_path / "run", tied_logits_model(), {"name": "mobilenetv1", **SMALL})
    output = tmp_path / "int8.tflite"
    common = [str(tmp_path / "run"), "-o", str(output), "--quantize", "int8", "--representative-data", "synthetic",
              "--calibration-images", "16", "--parity-images", "32", "--latency-runs", "2"]
    assert export_tflite.main(common) == 0
    printed = capsys.readouterr().out.splitlines()
    parity = json.loads((tmp_path / "int8.tflite.json").read_text())["report"]["parity"]
    assert parity["top1_agreement"] < 0.5  # the file's own parity check
    warnings = [line for line in printed if line.startswith("warning: the int8 file agrees")]
    assert len(warnings) == 1 and f"top-1 for {parity['top1_agreement']:.1%} of 32 images" in warnings[0]
    assert "--min-agreement 0.9 refuses such a file" in warnings[0]
    output.unlink()
    (tmp_path / "int8.tflite.json").unlink()
    assert export_tflite.main([*common, "--min-agreement", "0.9"]) != 0
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: the int8 .tflite agrees with the Keras model on top-1 for") and "\n" not in error
    assert leftovers(tmp_path) == ["run"]


def test_a_model_answering_one_class_is_one_warning_line_and_constant_outputs_print_no_nan(tmp_path):
    from mobilenets.deploy.export import format_report

    model = v1_with_classifier(np.zeros)  # every logit 0: one class (the first) for every image
    report = quick_export(model, tmp_path / "constant.tflite", quantize="dynamic", representative_data="synthetic",
                          parity_images=20)  # synthetic images: the 10 classes in turn
    printed = format_report(report)
    assert "nan" not in printed and "probability correlation n/a (constant outputs)" in printed
    assert report.warnings == ["warning: 100% of the 20 images are predicted as 'class_0': the model mostly answers "
                               "one class whatever the image; try: " + WHAT_TO_TRY]
    assert printed.splitlines()[-1] == report.warnings[0]
    # on uniform random pixels (no images given), one answer for all says nothing of the model: no warning
    assert quick_export(model, tmp_path / "random_pixels.tflite", quantize="dynamic").warnings == []

"""Models, pixels, runs and exports that several test files share (a test file imports from here, never
from another test file).

    model = small_model("mobilenetv1")          # random weights, BatchNorm statistics from a batch: O(1) logits
    model = trained_like("mobilenetv2_lgc")     # also LGC masks condensed and a least-squares classifier on top
    report = quick_export(model, tmp_path / "m.tflite")                 # float32, 8 parity images
    report = calibrated_export(model, tmp_path / "m.tflite", images=64)  # int8 on synthetic images
    assert_float32_parity(report)
    check = file_against_keras(report.output, model, images, probabilities=True)  # the file run here, not by export

small_model, condensed_lgc and trained_like build each model once per worker process and hand the same
object to every test file that worker runs: tests read them (export, convert, fold and flatten copy what
they change) and must not change them.
"""

import dataclasses
import functools

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mobilenets import build_model, runs
from mobilenets.data import make_dataset
from mobilenets.deploy.export import FLOAT32_TOLERANCE, export
from mobilenets.models.condensation import condense
from mobilenets.training.precise_bn import recompute_batch_norm_statistics

SMALL = {"num_classes": 10, "config": "cifar", "width_multiplier": 0.35}


def random_pixels(count, seed=0, side=32):
    """`count` float32 (side, side, 3) images of uniform random pixels in [0, 255]."""
    return np.random.default_rng(seed).uniform(0, 255, (count, side, side, 3)).astype(np.float32)


def condense_fully(model):
    while condense(model):
        pass
    return model


def fit_classifier(model):
    """A least-squares linear probe on synthetic training images: confident, separated logits, as after training."""
    images, labels = next(iter(make_dataset("synthetic", "train", 128, training=False, image_size=32)))
    logits = model.get_layer("logits")
    features = keras.Model(model.input, logits.input)(images).numpy()
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    solution = np.linalg.lstsq(features, 10.0 * np.eye(10)[labels.numpy()], rcond=None)[0]
    logits.set_weights([solution[:-1], solution[-1]])


@functools.lru_cache(maxsize=None)
def small_model(name, normalization="inception"):
    """A random SMALL model with O(1) logits (LGC masks condensed: it exports in its converted form)."""
    keras.utils.set_random_seed(0)
    model = condense_fully(build_model(name, normalization=normalization, **SMALL))
    return recompute_batch_norm_statistics(model, random_pixels(16, seed=1))


@functools.lru_cache(maxsize=None)
def condensed_lgc():
    """mobilenetv2_lgc condensed (random masks) and converted to its deployed form (no gathers)."""
    from mobilenets.deploy.convert import convert_learned_group_model

    keras.utils.set_random_seed(0)
    converted = convert_learned_group_model(build_model("mobilenetv2_lgc", **SMALL), condense_remaining=True)
    return recompute_batch_norm_statistics(converted, random_pixels(16, seed=1))


@functools.lru_cache(maxsize=None)
def trained_like(name, **overrides):
    """A random SMALL model (its arguments `overrides`) as training leaves it: LGC masks condensed, BatchNorm
    statistics from data, a fitted classifier (int8 ranges as a trained model's; with the initial statistics
    activations grow through the depth)."""
    keras.utils.set_random_seed(0)
    model = condense_fully(build_model(name, **{**SMALL, **overrides}))
    recompute_batch_norm_statistics(model, random_pixels(16, seed=1))
    fit_classifier(model)
    return model


def randomize(model, seed=0):
    """He-scaled kernels and random BatchNorm parameters and statistics, so that a wrong channel order shows."""
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        name, shape = variable.name, tuple(variable.shape)
        if "mask" in name or "stage" in name:
            continue
        if "moving_variance" in name:
            value = rng.uniform(0.5, 2.0, shape)
        elif "gamma" in name:
            value = rng.uniform(0.5, 1.5, shape)
        elif any(key in name for key in ("beta", "moving_mean", "bias")):
            value = rng.normal(0.0, 0.3, shape)
        else:
            fan_in = np.prod(shape[:2]) if "depthwise_kernel" in name else np.prod(shape[:-1])
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        variable.assign(value.astype(np.float32))


def write_run(run_dir, model, spec):
    """A run directory holding only model.json and a checkpoint of `model` (no config.json)."""
    runs.save_model_spec(str(run_dir), **spec)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run_dir / "checkpoints"), 2).save()


def to_tflite(model):
    """Float .tflite bytes, batch 1 (the model itself is not given to the converter: 20x faster)."""
    logits = tf.function(
        lambda images: model(images, training=False), input_signature=[tf.TensorSpec((1, *model.input_shape[1:]))]
    )
    return tf.lite.TFLiteConverter.from_concrete_functions([logits.get_concrete_function()], logits).convert()


def quick_export(model, path, parity_images=8, **kwargs):
    """`export` timing 2 invokes only (the tests check the file, not its speed)."""
    return export(model, path, latency_runs=2, parity_images=parity_images, **kwargs)


def calibrated_export(model, path, quantize="int8", images=64, parity_images=None, **kwargs):
    """A quantized `quick_export` calibrated on `images` synthetic training images and checked on as many more
    (or on `parity_images` more)."""
    return quick_export(model, path, quantize=quantize, representative_data="synthetic", calibration_images=images,
                        parity_images=parity_images or images, **kwargs)


def assert_float32_parity(report):
    """The float32 file's logits within export's own tolerance of the Keras model's."""
    assert report.parity.max_abs_diff <= FLOAT32_TOLERANCE * max(1.0, report.parity.max_abs_logit)


@functools.lru_cache(maxsize=None)
def _held_out(count, side):
    images, _ = next(iter(make_dataset("synthetic", "validation", count, training=False, image_size=side)))
    return images.numpy()


def held_out_images(count=64, side=32):
    """`count` synthetic validation images (raw pixels, the 10 classes in turn): what neither calibration nor
    export's parity check reads (they take the training split)."""
    return _held_out(count, side).copy()


def litert_outputs(path, images):
    """The .tflite file at `path` run here with the LiteRT interpreter, one image per invoke, as an app runs it:
    its outputs (float; integer tensors (de)quantized with the file's own scale and zero point) for raw-pixel
    `images`. Independent of mobilenets.deploy (export's parity(), runtime.TFLitePredictor)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    (image_input,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for image in images:
        pixels = image[None]
        if np.issubdtype(image_input["dtype"], np.integer):
            scale, zero_point = image_input["quantization"]
            limits = np.iinfo(image_input["dtype"])
            pixels = np.clip(np.round(pixels / scale + zero_point), limits.min, limits.max)
        interpreter.set_tensor(image_input["index"], pixels.astype(image_input["dtype"]))
        interpreter.invoke()
        values = interpreter.get_tensor(output["index"])[0].astype(np.float32)
        if np.issubdtype(output["dtype"], np.integer):
            scale, zero_point = output["quantization"]
            values = (values - zero_point) * scale
        outputs.append(values)
    return np.stack(outputs)


@dataclasses.dataclass
class FileCheck:
    """A .tflite file against its Keras model on the same images, computed by the test (`file_against_keras`)."""

    images: int
    top1_agreement: float  # share of images whose top class is the same
    correlation: float  # Pearson, over every output value of the batch
    max_abs_diff: float
    max_abs_value: float  # of the Keras outputs
    value_range: float  # of the Keras outputs, max - min
    file_outputs: np.ndarray
    keras_outputs: np.ndarray


def file_against_keras(path, model, images, *, probabilities):
    """`FileCheck` of the file at `path` and the Keras `model` on raw-pixel `images`. probabilities: the
    file outputs a softmax (export's default), compared with the softmax of the Keras logits; else logits."""
    got = litert_outputs(path, images)
    expected = model(images, training=False).numpy()
    if probabilities:
        expected = tf.nn.softmax(expected).numpy()
    return FileCheck(images=len(images), top1_agreement=float(np.mean(got.argmax(-1) == expected.argmax(-1))),
                     correlation=float(np.corrcoef(got.ravel(), expected.ravel())[0, 1]),
                     max_abs_diff=float(np.abs(got - expected).max()), max_abs_value=float(np.abs(expected).max()),
                     value_range=float(np.ptp(expected)), file_outputs=got, keras_outputs=expected)


def assert_quantized_file_agrees(path, model, images, *, probabilities, top1=0.9, correlation=0.98):
    """The quantized file, run here on `images`, gives the float Keras model's top-1 for at least `top1` of
    them and outputs that correlate with its at least `correlation`. Returns the `FileCheck`."""
    check = file_against_keras(path, model, images, probabilities=probabilities)
    assert check.top1_agreement >= top1 and check.correlation >= correlation, (
        f"{path}: top-1 agreement {check.top1_agreement:.3f} (>= {top1}), correlation {check.correlation:.4f} "
        f"(>= {correlation}) on {check.images} images")
    return check

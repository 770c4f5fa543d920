"""TFLite export for phones: float32, float16, dynamic-range, full-integer int8 and QAT int8.

    report = export("runs/v2", "v2_int8.tflite", quantize="int8", representative_data="cifar10")
    print(format_report(report))

The source is a training run directory (or checkpoint prefix), a saved Keras
model (.keras / .h5 / SavedModel) or a registered model name (random init or
keras.applications weights: latency benchmarks). Modes follow the TFLite
post-training quantization guide (https://ai.google.dev/edge/litert/models/post_training_quantization):

    none     float32
    float16  float16 weights, float32 compute
    dynamic  int8 weights, float activations quantized on the fly
    int8     full-integer (Jacob et al. 2018), activations calibrated on
             representative images; --int8-io also makes the input and output int8
    qat      full-integer after quantize-aware fine-tuning (`mobilenets.deploy.quantization`)

Preprocessing travels with the model: its first layer normalizes raw 0..255
RGB pixels. The output is class probabilities (a softmax appended after the
logits; `logits=True` keeps the logits). The file carries the standard TFLite
Model Metadata that MediaPipe Tasks' ImageClassifier reads (`mobilenets.deploy.metadata`:
RGB input, NormalizationOptions for raw pixels, the labels packed as labels.txt)
and our own JSON description (input size, pixel range, mean/std, labels,
quantization) under the name "mobilenets", also written beside it as
`<file>.json`. `uint8_io` gives the integer input/output MediaPipe takes
(uint8 pixels as they are); `int8_io` gives int8 tensors, which MediaPipe refuses.
Every export is then checked against the Keras model on a batch, outputs
compared like with like (Keras softmax vs file probabilities, or logits):
max |difference| for float32/float16, top-1 agreement and correlation for quantized files,
inspected (ops, fused activations, what XNNPACK leaves to TFLite kernels) and
timed with the LiteRT interpreter (`mobilenets.deploy.litert`). The file is written
to a temporary name and renamed only when all of this succeeded
(`mobilenets.io.atomic_path`): a failed export leaves no file behind.
"""

import contextlib
import dataclasses
import json
import math
import os
import re
from typing import List, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mobilenets import runs
from mobilenets.errors import CheckpointError, ConfigError, DataError, ExportError, first_line
from mobilenets.deploy.runtime import TFLitePredictor
from mobilenets.io import atomic_path, write_json
from mobilenets.models.layers import Normalize, decomposed_hard_swish
from mobilenets.labels import class_names, dataset_labels
from mobilenets.deploy.tuning import deployed_model
from mobilenets.deploy.litert import (
    append_float_softmax,
    InvokeTimer,
    embed_metadata,
    median_latencies_ms,
    op_summary,
    random_images,
    undelegated_ops,
)
from mobilenets.models.attention import has_attention
from mobilenets.deploy import litert
from mobilenets.deploy import metadata as tflite_metadata
from mobilenets.models.registry import build_model, list_models

MODES = ("none", "float16", "dynamic", "int8", "qat")
INTEGER_MODES = ("int8", "qat")
# max |TFLite - Keras| logit difference, relative to the logits' scale (absolute when it is below 1):
FLOAT32_TOLERANCE = 1e-4  # scale: the largest |logit| (float32 rounding grows with the logits)
FLOAT16_TOLERANCE = 1e-2  # scale: the logit range, max - min (softmax ignores a shift of all logits)
METADATA_NAME = "mobilenets"
NEEDS_IMAGES = "--quantize {mode} needs representative images: pass --representative-data DATASET or FILE.npz"


# ---------------------------------------------------------------- sources


@dataclasses.dataclass
class Source:
    """The Keras model to export and where it came from."""

    model: keras.Model
    description: str
    data: Optional[runs.DataSettings] = None  # the training run's data as it trained on it (runs.run_data)


def _run_data(run_dir):
    """The run's `runs.DataSettings` (runs.run_data), or None when its config.json is missing or unreadable."""
    try:
        return runs.run_data(run_dir)
    except CheckpointError:
        return None


def load_source(source, which="best", weights=None, **build_kwargs):
    """A `Source` from a run directory, checkpoint prefix, saved Keras model or registered model name.

    weights and build_kwargs (num_classes, input_shape, width_multiplier, config...)
    apply to a model name only: see `mobilenets.models.registry.build_model`.
    """
    source = os.fspath(source)
    exists = os.path.exists(source) or os.path.exists(source + ".index")  # a path, or a checkpoint prefix
    if not exists and source in list_models():
        model = build_model(source, weights=weights, **build_kwargs)
        return Source(model, f"{source} ({'weights: ' + str(weights) if weights else 'random init'})")
    if weights is not None:
        raise ConfigError(f"--weights applies to a registered model name, not to {source}; drop it")
    if not exists:
        raise ExportError(
            f"{source} does not exist and is not a model name; pass a run directory, a saved Keras model "
            f"(.keras, .h5, SavedModel) or one of: {', '.join(list_models())}"
        )
    kind = runs.source_kind(source)
    if kind == "tflite":
        raise ExportError(f"{source} is already a .tflite file; pass the run directory or Keras model it came from")
    model = runs.load_keras_source(source, kind, which)
    run_dir = runs.run_dir_of(source, kind)
    data = _run_data(run_dir) if run_dir else None
    return Source(model, f"{source} ({kind})", data)


def image_shape(model):
    """(height, width, 3) of a one-image-input model; ExportError otherwise."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError(f"model {model.name} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                          "export takes one image in, logits out")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or shape[-1] != 3 or None in shape:
        raise ExportError(f"model {model.name} takes {shape} inputs; export needs a fixed (height, width, 3): "
                          "build it with input_shape=(H, W, 3)")
    return tuple(int(side) for side in shape)


# ---------------------------------------------------------------- images


class ImageSource:
    """Raw 0..255 float32 images for calibration, QAT and the parity check.

    spec: a `.npz` file with `x` (N, H, W, 3) uint8 at the model's size, a
    dataset name for `mobilenets.data.make_dataset`, or a training run's
    `runs.DataSettings` (its options: the run's own training images, none it held
    out). Of a dataset, the training split at the model's size, through the
    training pipeline: augmented for QAT, not for calibration and parity.
    """

    def __init__(self, spec, shape, data_dir=None, seed=0):
        self.shape, self.data_dir, self.seed = tuple(shape), data_dir, seed
        if isinstance(spec, runs.DataSettings):
            self.data = dataclasses.replace(spec, image_size=self.shape[:2])
            self.spec = self.data.dataset
        else:
            self.spec = os.fspath(spec)
            self.data = runs.DataSettings(self.spec, data_dir, self.shape[:2])
        self.array = self._read_npz() if self.spec.endswith(".npz") else None

    def _read_npz(self):
        how = f"save x as uint8 (N, {self.shape[0]}, {self.shape[1]}, 3) with numpy.savez, or pass a dataset name"
        try:
            with np.load(self.spec, allow_pickle=False) as archive:
                if "x" not in archive.files:
                    raise DataError(f"{self.spec} has no array 'x' (it has {archive.files}); {how}")
                x = archive["x"]
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"cannot read {self.spec} ({first_line(error, 120)}); {how}") from None
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape or len(x) == 0:
            expected = ", ".join(map(str, self.shape))
            raise DataError(f"{self.spec}: x has shape {x.shape} but the model takes (N, {expected}) images; {how}")
        if x.dtype != np.uint8:
            raise DataError(f"{self.spec}: x is {x.dtype}, not uint8 raw pixels; {how}")
        return x

    @property
    def description(self):
        if self.array is not None:
            return self.spec
        return self.data.describe("train") if self.data.from_run else f"{self.spec} training split"

    def num_images(self):
        if self.array is not None:
            return len(self.array)
        return self.data.info().splits.get("train")

    def batches(self, batch_size, training):
        """tf.data.Dataset of float32 image batches (B, H, W, 3)."""
        if self.array is not None:
            images = tf.data.Dataset.from_tensor_slices(self.array)
            if training:
                images = images.shuffle(len(self.array), seed=self.seed, reshuffle_each_iteration=True)
            return images.batch(batch_size).map(_to_float)
        from mobilenets.data import make_dataset

        dataset = make_dataset(**self.data.dataset_arguments("train"), batch_size=batch_size, training=training,
                               seed=self.seed)
        return dataset.map(_images_only)

    def take(self, count, skip=0):
        """`count` images as one float32 array, after skipping `skip` (fewer if the source has fewer; none past it)."""
        if self.array is not None:
            return self.array[skip : skip + count].astype(np.float32)
        images = list(self.batches(64, training=False).unbatch().skip(skip).take(count).as_numpy_iterator())
        return np.stack(images) if images else np.zeros((0, *self.shape), np.float32)


def _to_float(images):
    return tf.cast(images, tf.float32)


def _images_only(images, labels):
    return images


# ---------------------------------------------------------------- conversion


def _inference_function(model, shape, probabilities=False, whole_pixels=False):
    """The concrete function to convert: logits, or their softmax.

    whole_pixels: a FakeQuant over [0, 255] in 8 bits (identity on whole pixel
    values) fixes the input's quantization to scale 1: uint8 input = the pixel,
    int8 = pixel - 128, whatever range the calibration images span.
    """

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="image")], autograph=False)
    def scores(image):
        if whole_pixels:
            image = tf.quantization.fake_quant_with_min_max_args(image, min=0.0, max=255.0, num_bits=8)
        logits = model(image, training=False)
        return tf.nn.softmax(logits) if probabilities else logits

    return scores.get_concrete_function()


def _check_mode(mode, int8_io, uint8_io=False):
    if mode not in MODES:
        raise ConfigError(f"unknown quantization {mode!r}; choose one of: {', '.join(MODES)}")
    if int8_io and uint8_io:
        raise ConfigError("--int8-io and --uint8-io exclude each other; pick one (MediaPipe takes uint8)")
    if (int8_io or uint8_io) and mode not in INTEGER_MODES:
        raise ConfigError(f"--{'int8' if int8_io else 'uint8'}-io needs --quantize int8 or qat, not {mode}")


def _converter_error(model, mode, error):
    text = str(error)
    missing = re.search(r"'([\w.]+)' op is neither a custom op nor a flex op", text)
    reported = re.search(r"error: ([^\n]+)", text)
    if missing:
        detail = f"op {missing.group(1)} has no TFLite builtin kernel"
    else:
        detail = (reported.group(1) if reported else first_line(error)).strip()[:300]
    hint = "try --quantize dynamic or float16" if mode in INTEGER_MODES else "replace the layer that uses it"
    return ExportError(f"TFLite cannot convert {model.name} ({mode}): {detail}; {hint}")


def convert(model, mode="none", calibration_images=None, int8_io=False, probabilities=False, uint8_io=False):
    """The .tflite flatbuffer (bytes) of `model` in quantization `mode`.

    probabilities: append a softmax to the logits. int8_io / uint8_io: integer
    input and output tensors (integer modes); their input quantization is
    scale 1 (see `_inference_function`).

    calibration_images: float32 raw pixels, required for 'int8' and 'qat' (for a
    'qat' model they fill the ranges fake quantization does not cover, e.g.
    inside the hard sigmoid). The converter runs on a frozen concrete
    function: the SavedModel round trip of `from_keras_model` costs 10x the
    time for the same graph.
    """
    _check_mode(mode, int8_io, uint8_io)
    shape = image_shape(model)
    # An int8 softmax is not in XNNPACK: with float output it is appended in float32 after conversion.
    softmax_after = probabilities and mode in INTEGER_MODES and not (int8_io or uint8_io)
    with decomposed_hard_swish() if mode in INTEGER_MODES else contextlib.nullcontext():
        # traced here: in int8, h-swish as ops that XNNPACK runs (see layers.hard_swish)
        function = _inference_function(model, shape, probabilities and not softmax_after,
                                       whole_pixels=int8_io or uint8_io)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.experimental_lower_to_saved_model = False
    if mode != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode in INTEGER_MODES:
        if calibration_images is None or len(calibration_images) == 0:
            raise ConfigError(NEEDS_IMAGES.format(mode=mode))
        converter.representative_dataset = lambda: ([image[None]] for image in calibration_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io or uint8_io:
            converter.inference_input_type = converter.inference_output_type = tf.int8 if int8_io else tf.uint8
    try:
        if mode in INTEGER_MODES and has_attention(model):  # XNNPACK has no int8 batch matmul or softmax
            from mobilenets.deploy.quantization import convert_int8_float_attention

            flatbuffer = convert_int8_float_attention(converter)
        else:
            flatbuffer = converter.convert()
    except Exception as error:  # ConverterError, and ValueError/RuntimeError from calibration
        raise _converter_error(model, mode, error) from None
    return append_float_softmax(flatbuffer) if softmax_after else flatbuffer


# ---------------------------------------------------------------- metadata


def _normalization(model):
    layer = next((layer for layer in model.layers if isinstance(layer, Normalize)), None)
    return None if layer is None else {"mean": list(layer.mean), "std": list(layer.std), "in_model": True}


def describe(model, mode, labels=None, int8_io=False, source="", probabilities=False, uint8_io=False,
             eval_crop_fraction=None):
    """What a phone app needs to feed the model and read its answer (the embedded and sidecar JSON);
    eval_crop_fraction: the central crop the model was validated with (a run's), None when unknown."""
    height, width, _ = image_shape(model)
    dtype = "int8" if int8_io else "uint8" if uint8_io else "float32"
    note = "raw RGB pixels resized to the input size; the model normalizes them in its first layer"
    if int8_io or uint8_io:
        note += f"; {dtype} input = round(pixel / scale + zero_point) with the input tensor's quantization"
    return {
        "format": "mobilenets-tflite/1",
        "model": model.name,
        "source": source,
        "quantization": mode,
        "input": {
            "shape": [1, height, width, 3],
            "layout": "NHWC",
            "color": "RGB",
            "dtype": dtype,
            "pixel_range": [0, 255],
            "normalization": _normalization(model),
            "eval_crop_fraction": eval_crop_fraction,
            "note": note,
        },
        "output": {
            "kind": "probabilities" if probabilities else "logits",
            "num_classes": int(model.outputs[0].shape[-1]),
            "dtype": dtype,
        },
        "labels": labels,
    }


def with_tensor_quantization(description, predictor):
    """`description` plus the (scale, zero point) of the file's input and output tensors (None when float)."""
    for key, details in (("input", predictor.input), ("output", predictor.output)):
        scale, zero_point = details["quantization"]
        quantization = {"scale": float(scale), "zero_point": int(zero_point)} if scale else None
        description = {**description, key: {**description[key], "quantization": quantization}}
    return description


def read_metadata(path):
    """The description `export` embedded in a .tflite file, or None."""
    return litert.read_metadata(path, METADATA_NAME)


def standard_metadata(model, mode, names, tensors, probabilities, source=""):
    """The ModelMetadata flatbuffer (bytes) for `model` exported in `mode`; tensors: `litert.io_tensors`."""
    height, width, _ = image_shape(model)
    image = tensors["input"]
    kind = "float32" if mode == "none" else mode + ("" if image["dtype"] == "float32" else f", {image['dtype']} I/O")
    return tflite_metadata.image_classifier_metadata(
        name=model.name,
        description=f"{model.name} image classifier, {len(names)} classes; raw 0..255 RGB pixels in, "
        f"{'probabilities' if probabilities else 'logits'} out. Source: {source}",
        version=kind,
        input_size=(height, width),
        num_classes=len(names),
        input_dtype=image["dtype"],
        input_quantization=image["quantization"],
        probabilities=probabilities,
    )


def mediapipe_note(tensors):
    """Whether MediaPipe Tasks' ImageClassifier takes the file's tensor types (float32 or uint8), and what to do."""
    types = {tensors["input"]["dtype"], tensors["output"]["dtype"]}
    if types <= {"float32", "uint8"}:
        return "ImageClassifier takes it (standard metadata, labels packed)"
    return f"ImageClassifier refuses {'/'.join(sorted(types))} tensors (float32 or uint8 only): export with --uint8-io"


# ---------------------------------------------------------------- checks


@dataclasses.dataclass
class Parity:
    """Keras float model vs the .tflite file on the same raw-pixel batch."""

    images: int
    image_source: str
    output: str  # 'logits' or 'probabilities': the Keras side is the same (softmax of its logits)
    max_abs_diff: float
    max_abs_logit: float
    logit_range: float  # max - min over the batch
    top1_agreement: float
    logit_correlation: float  # Pearson, over all logits of the batch


def parity(model, predictor, images, image_source="", probabilities=False):
    """`Parity` of a Keras model and a `TFLitePredictor` on raw-pixel `images` (correlation nan for constant outputs).

    probabilities: the file outputs a softmax, compared with the softmax of the Keras logits.
    """
    keras_logits = model(tf.convert_to_tensor(images), training=False)
    keras_logits = (tf.nn.softmax(keras_logits) if probabilities else keras_logits).numpy()
    tflite_logits = predictor.predict(images)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = float(np.corrcoef(keras_logits.ravel(), tflite_logits.ravel())[0, 1])
    return Parity(
        images=len(images),
        image_source=image_source,
        output="probabilities" if probabilities else "logits",
        max_abs_diff=float(np.max(np.abs(keras_logits - tflite_logits))),
        max_abs_logit=float(np.max(np.abs(keras_logits))),
        logit_range=float(np.ptp(keras_logits)),
        top1_agreement=float(np.mean(keras_logits.argmax(-1) == tflite_logits.argmax(-1))),
        logit_correlation=correlation,
    )


def check_parity(result, mode, min_agreement=None):
    """ExportError when the file does not compute what the Keras model computes."""
    if mode == "none" and not result.max_abs_diff <= FLOAT32_TOLERANCE * max(result.max_abs_logit, 1.0):
        raise ExportError(
            f"float32 .tflite {result.output} differ from Keras by {result.max_abs_diff:.3g}, "
            f"over {FLOAT32_TOLERANCE:g} "
            f"times the largest |value| {result.max_abs_logit:.3g}; "
            "a layer converts wrongly: report it with the model name"
        )
    if mode == "float16" and not result.max_abs_diff <= FLOAT16_TOLERANCE * max(result.logit_range, 1.0):
        raise ExportError(
            f"float16 .tflite {result.output} differ from Keras by {result.max_abs_diff:.3g}, over "
            f"{FLOAT16_TOLERANCE:.0%} of their range {result.logit_range:.3g}; export float32 instead"
        )
    if mode not in ("none", "float16") and min_agreement is not None and result.top1_agreement < min_agreement:
        raise ExportError(
            f"the {mode} .tflite agrees with the Keras model on top-1 for {result.top1_agreement:.1%} of "
            f"{result.images} images (< {min_agreement:.1%}); calibrate on more representative images, "
            "try --quantize qat, or export float16"
        )


# ---------------------------------------------------------------- export


@dataclasses.dataclass
class ExportReport:
    """What `export` wrote and measured (also under "report" in the sidecar JSON)."""

    output: str
    metadata_path: str
    source: str
    mode: str
    size_bytes: int
    parity: Parity
    latency_ms: float  # median, LiteRT interpreter, default delegate (XNNPACK)
    threads: int
    latency_runs: int
    ops: dict  # {'CONV_2D+RELU6': 18, ...}
    undelegated: dict  # ops XNNPACK left to TFLite's kernels
    metadata: Optional[dict] = None  # standard TFLite metadata, as `tflite_metadata.summary_lines` + mediapipe
    calibration: Optional[str] = None
    qat_steps: Optional[int] = None
    qat_loss: Optional[List[float]] = None  # distillation loss, first and last tenth of the steps
    deployment: Optional[str] = None  # how a learned-group-conv model was deployed (see deploy.tuning)

    def as_dict(self):
        return dataclasses.asdict(self)


def _check_options(mode, int8_io, counts, qat_lengths, uint8_io=False):
    _check_mode(mode, int8_io, uint8_io)
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    for name, value in qat_lengths.items():
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise ConfigError(f"{name} must be positive, got {value!r}")


def _image_source(representative_data, data_dir, source, shape, seed):
    """ImageSource of `representative_data`, else of the run's own training images (none it held out), else None."""
    if representative_data:
        return ImageSource(representative_data, shape, data_dir, seed)
    return ImageSource(source.data, shape, seed=seed) if source.data is not None else None


def _short(error):
    """A DataError's what-is-wrong part, without its how-to."""
    return first_line(error).split("; ")[0]


def _calibration_images(images, count, mode):
    """The first `count` images of `images`; one-line ConfigError when there are none to read."""
    needs = NEEDS_IMAGES.format(mode=mode)
    try:
        batch = images.take(count)
    except DataError as error:
        if not images.data.from_run:
            raise
        raise ConfigError(f"cannot read the run's training images to calibrate on ({_short(error)}); "
                          f"{needs.split(': ')[1]}") from None
    if not len(batch):
        raise ConfigError(f"{images.description} has no images to calibrate on; {needs.split(': ')[1]}")
    return batch


def _check_images(images, count, skip, shape, seed):
    """(raw-pixel batch for the parity check, where it comes from): uniform random pixels without images, or
    when a run's own images cannot be read (a float export does not need them)."""
    if images is None:
        return random_images(count, shape, seed), "uniform random pixels"
    try:
        batch = images.take(count, skip=skip)
        if len(batch) < count:  # a small source: check on its first images instead
            batch = images.take(count)
    except DataError as error:
        if not images.data.from_run:
            raise
        return random_images(count, shape, seed), f"uniform random pixels (the run's images: {_short(error)})"
    if not len(batch):
        return random_images(count, shape, seed), "uniform random pixels"
    return batch, images.description


def _qat(model, images, calibration, steps, epochs, batch_size, learning_rate):
    """(fine-tuned quantize-aware copy of `model`, steps, [first, last] distillation loss)."""
    from mobilenets.deploy.quantization import fine_tune, quantize_aware_model

    if steps is None:
        total = images.num_images()
        if not total:
            raise ConfigError(f"the size of {images.description} is unknown; pass qat_steps (--qat-steps)")
        steps = max(1, math.ceil((epochs or 1) * total / batch_size))
    student = quantize_aware_model(model, calibration)
    first, last = fine_tune(student, model, images.batches(batch_size, training=True), steps, learning_rate)
    return student, steps, [first, last]


def export(
    source,
    output,
    quantize="none",
    representative_data=None,
    data_dir=None,
    int8_io=False,
    calibration_images=200,
    parity_images=32,
    min_agreement=None,
    qat_steps=None,
    qat_epochs=None,
    qat_batch_size=32,
    qat_learning_rate=1e-5,
    threads=1,
    latency_runs=50,
    labels=None,
    which="best",
    seed=0,
    keep_masks=False,
    logits=False,
    uint8_io=False,
    **source_kwargs,
):
    """Exports `source` (see `load_source`; a keras.Model is taken as is) to `output`; returns an `ExportReport`.

    representative_data: dataset name or .npz (see `ImageSource`; default: the
        run's own training images, read as it trained on them, none it held out:
        `runs.run_data`); required for int8 and qat, and the parity batch whenever
        there is one (else uniform random pixels).
    min_agreement: fail a quantized export whose top-1 agreement is lower.
    qat_steps / qat_epochs: fine-tuning length (default one epoch of the images).
    labels: a text file of class names (default: the run's dataset's, else class_N).
    logits: output the logits (default: their softmax, the probabilities apps expect).
    int8_io / uint8_io: integer input and output tensors; MediaPipe takes uint8, not int8.
    keep_masks: export a learned-group-conv model as the masked dense model it trains as; by
        default it is exported in its converted form (`mobilenets.deploy.tuning.deployed_model`),
        and the parity check compares the file with the masked model.
    Writes `output` and `output + '.json'` only when the export passed its checks.
    """
    counts = {"calibration_images": calibration_images, "parity_images": parity_images, "threads": threads,
              "latency_runs": latency_runs, "qat_batch_size": qat_batch_size}
    _check_options(quantize, int8_io, counts, {"qat_steps": qat_steps, "qat_epochs": qat_epochs}, uint8_io)
    if isinstance(source, keras.Model):
        source = Source(source, source.name)
    else:
        source = load_source(source, which, **source_kwargs)
    model, shape = source.model, image_shape(source.model)
    images = _image_source(representative_data, data_dir, source, shape, seed)
    if quantize in INTEGER_MODES and images is None:
        raise ConfigError(NEEDS_IMAGES.format(mode=quantize))
    num_classes = int(model.outputs[0].shape[-1])
    data = source.data or runs.DataSettings(None)
    names = class_names(dataset_labels(labels, data.dataset, data.data_dir, num_classes), num_classes)
    probabilities = not logits
    calibration = _calibration_images(images, calibration_images, quantize) if quantize in INTEGER_MODES else None
    check_images, check_source = _check_images(
        images, parity_images, 0 if calibration is None else len(calibration), shape, seed
    )

    converted, deployment = deployed_model(model, quantize, keep_masks, threads)
    steps, loss = None, None
    if quantize == "qat":
        converted, steps, loss = _qat(
            converted, images, calibration, qat_steps, qat_epochs, qat_batch_size, qat_learning_rate
        )
    flatbuffer = convert(converted, quantize, calibration, int8_io, probabilities, uint8_io)
    description = describe(model, quantize, names, int8_io, source.description, probabilities, uint8_io,
                           data.eval_crop_fraction)
    tensors = litert.io_tensors(flatbuffer)
    flatbuffer = tflite_metadata.populate(
        embed_metadata(flatbuffer, METADATA_NAME, json.dumps(description).encode()),
        standard_metadata(model, quantize, names, tensors, probabilities, source.description),
        {tflite_metadata.LABELS_FILE: tflite_metadata.labels_text(names)},
    )

    output = os.fspath(output)
    with atomic_path(output, suffix=".tflite") as tmp:
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
        predictor = TFLitePredictor(tmp, threads)
        result = parity(model, predictor, check_images, check_source, probabilities)
        check_parity(result, quantize, min_agreement)
        report = ExportReport(
            output=output,
            metadata_path=output + ".json",
            source=source.description,
            mode=quantize,
            size_bytes=os.path.getsize(tmp),
            parity=result,
            latency_ms=median_latencies_ms([InvokeTimer(predictor)], latency_runs)[0],
            threads=threads,
            latency_runs=latency_runs,
            ops=op_summary(tmp),
            undelegated=undelegated_ops(predictor.interpreter),
            metadata={
                **dict(tflite_metadata.summary_lines(tflite_metadata.read(tmp))),
                "MediaPipe": mediapipe_note(tensors),
            },
            calibration=None if calibration is None else f"{len(calibration)} images of {images.description}",
            qat_steps=steps,
            qat_loss=loss,
            deployment=deployment,
        )
        sidecar = {**with_tensor_quantization(description, predictor), "report": report.as_dict()}
        write_json(report.metadata_path, sidecar)
    return report


def _counts(counts):
    return ", ".join(f"{name} x{count}" for name, count in counts.items())


def format_report(report):
    """The report as aligned 'name  value' lines."""
    check = report.parity
    value = "probability" if check.output == "probabilities" else "logit"
    if report.mode in ("none", "float16"):
        agreement = (f"max |{value} diff| {check.max_abs_diff:.3g} (largest |{value}| {check.max_abs_logit:.3g}, "
                     f"range {check.logit_range:.3g})")
    else:
        agreement = (
            f"top-1 agreement {check.top1_agreement:.1%}, {value} correlation {check.logit_correlation:.4f}, "
            f"max |{value} diff| {check.max_abs_diff:.3g}"
        )
    delegation = f"leaves {_counts(report.undelegated)} to TFLite kernels" if report.undelegated else "runs every op"
    latency = f"{report.latency_ms:.3f} ms, median of {report.latency_runs} invokes, {report.threads} thread(s)"
    lines = [
        ("wrote", f"{report.output} (+ {os.path.basename(report.metadata_path)})"),
        ("source", report.source),
        ("quantization", report.mode + (f", {report.calibration}" if report.calibration else "")),
        *([("deployed as", report.deployment)] if report.deployment else []),
        ("parity vs Keras", f"{agreement} on {check.images} images of {check.image_source}"),
        ("size", f"{report.size_bytes / 2**20:.2f} MB"),
        ("latency", latency),
        ("ops", _counts(report.ops)),
        ("XNNPACK", delegation),
        *((name if name == "MediaPipe" else f"metadata: {name}", value)
          for name, value in (report.metadata or {}).items()),
    ]
    if report.qat_steps:
        first, last = report.qat_loss
        lines.insert(3, ("qat", f"{report.qat_steps} steps, distillation loss {first:.4f} -> {last:.4f}"))
    width = max(len(name) for name, _ in lines)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in lines)

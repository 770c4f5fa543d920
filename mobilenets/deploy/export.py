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
max |difference| for float32/float16, top-1 agreement and correlation for quantized files
(a one-line warning when they are low, `LOW_AGREEMENT`, or when the model answers one class for
most of its labelled parity images, `mobilenets.learning`; `min_agreement` refuses a file instead),
inspected (ops, fused activations, what XNNPACK leaves to TFLite kernels) and
timed with the LiteRT interpreter (`mobilenets.deploy.litert`). The file is written
to a temporary name and renamed only when all of this succeeded
(`mobilenets.io.atomic_path`): a failed export leaves no file behind.
"""

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import re
from typing import List, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mobilenets import learning, runs
from mobilenets.errors import CheckpointError, ConfigError, DataError, ExportError, first_line
from mobilenets.deploy.runtime import TFLitePredictor
from mobilenets.io import atomic_path, write_json
from mobilenets.models.layers import Normalize
from mobilenets.deploy.activations import int8_activation_forms
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
from mobilenets.deploy import MODES, litert
from mobilenets.deploy import metadata as tflite_metadata
from mobilenets.models.condensation import learned_group_convs
from mobilenets.models.pretrained import transfer_weights
from mobilenets.models.registry import build_model, list_models
from mobilenets.training.lock import LOCK_FILE

INTEGER_MODES = ("int8", "qat")
# max |TFLite - Keras| logit difference, relative to the logits' scale (absolute when it is below 1):
FLOAT32_TOLERANCE = 1e-4  # scale: the largest |logit| (float32 rounding grows with the logits)
FLOAT16_TOLERANCE = 1e-2  # scale: the logit range, max - min (softmax ignores a shift of all logits)
QUANTIZED_FEATURE_TOLERANCE = 1.0  # a quantized backbone's, relative to each output's largest |value|
# A quantized classifier's file below either gets a warning (its report's last line); a trained model's int8 file
# agrees on about 97% of held-out images (README, "Quantized accuracy on real images"), random weights on 50-88%.
LOW_AGREEMENT = 0.9  # top-1 agreement with the Keras model
LOW_CORRELATION = 0.9  # Pearson correlation of the outputs (probabilities or logits) with the Keras model's
METADATA_NAME = "mobilenets"
NEEDS_IMAGES = "--quantize {mode} needs representative images: pass --representative-data DATASET or FILE.npz"
# registry.build_model's backbone arguments and their defaults (a classifier)
BACKBONE_OPTIONS = {"include_top": True, "pooling": None, "features_only": False, "out_indices": None}
POOLING_LAYERS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)  # a pooled backbone's end


# ---------------------------------------------------------------- sources


@dataclasses.dataclass
class Source:
    """The Keras model to export and where it came from."""

    model: keras.Model
    description: str
    data: Optional[runs.DataSettings] = None  # the training run's data as it trained on it (runs.run_data)
    note: Optional[str] = None  # the run is still training: which of its checkpoints this is


def _run_data(run_dir):
    """The run's `runs.DataSettings` (runs.run_data), or None when its config.json is missing or unreadable."""
    try:
        return runs.run_data(run_dir)
    except CheckpointError:
        return None


def load_source(source, which="best", weights=None, **build_kwargs):
    """A `Source` from a run directory, checkpoint prefix, saved Keras model or registered model name.

    weights and build_kwargs (num_classes, input_shape, width_multiplier, config...)
    apply to a model name only: see `mobilenets.models.registry.build_model`. Its backbone
    options (include_top=False, features_only=True, BACKBONE_OPTIONS) also take a run's model
    apart: the backbone, built as the run's model.json says, with the run's weights.
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
    training = _training_process(source) if os.path.isdir(source) else None
    if training and not _has_checkpoint(source):
        raise CheckpointError(f"{source} is still training ({training}) and has no checkpoint yet; wait for its first "
                              "checkpoint (the end of its first epoch) and export again")
    kind = runs.source_kind(source)
    if kind == "tflite":
        raise ExportError(f"{source} is already a .tflite file; pass the run directory or Keras model it came from")
    model = runs.load_keras_source(source, kind, which)
    run_dir = runs.run_dir_of(source, kind)
    description = f"{source} ({kind})"
    backbone = {key: build_kwargs[key] for key, default in BACKBONE_OPTIONS.items()
                if build_kwargs.get(key, default) != default}
    if backbone:
        model = _backbone_of_run(model, run_dir, source, backbone)
        description = f"{source} ({kind}, backbone)"
    data = _run_data(run_dir) if run_dir else None
    return Source(model, description, data, _still_training_note(source, which) if training else None)


def _training_process(run_dir):
    """The process a run directory's lock names while it trains ('pid 123 on host'; training.lock), else None."""
    try:
        handle = open(os.path.join(run_dir, LOCK_FILE))
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: the training process is alive
            return handle.read().strip() or "process unknown"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def _has_checkpoint(run_dir):
    """Whether a run directory holds what export restores: its model.json and a checkpoint."""
    has_spec = os.path.isfile(os.path.join(run_dir, runs.MODEL_SPEC))
    return has_spec and any(runs.latest_checkpoint(run_dir, which) for which in runs.CHECKPOINTS)


def _still_training_note(run_dir, which):
    """The one line saying which checkpoint of a run that is still training is exported."""
    checkpoint = runs.run_checkpoint(run_dir, which)
    epoch = runs.checkpoint_epoch(checkpoint)
    after = "" if epoch is None else f" (after epoch {epoch})"
    return (f"note: {run_dir} is still training: exported its checkpoint {checkpoint}{after}; export again when "
            "the run ends for its final weights")


def _backbone_of_run(model, run_dir, source, options):
    """The backbone (`options`: BACKBONE_OPTIONS) of a run's `model`, with its weights."""
    if run_dir is None:
        raise ConfigError(f"{source} is a saved model, which does not say how it was built: --features-only and "
                          "--no-top take a run directory or a model name")
    backbone = build_model(**runs.load_model_spec(run_dir), **options)
    transfer_weights(model, backbone)
    return backbone


def is_backbone(model):
    """True for a model that outputs features, not class scores (build_model include_top=False or
    features_only=True): several outputs, a feature map, or a globally pooled vector."""
    if len(model.outputs) != 1:
        return True
    pooled = isinstance(model.outputs[0]._keras_history.layer, POOLING_LAYERS)
    return model.outputs[0].shape.rank != 2 or pooled


def _natural(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def named_features(outputs):
    """{name: value} of a backbone's outputs (a dict, or one value: 'features'), by stride: 'stride_2' first."""
    if not isinstance(outputs, dict):
        return {"features": outputs}
    return {name: outputs[name] for name in sorted(outputs, key=_natural)}


def feature_names(model):
    """A backbone's output names, in the order its .tflite file has them."""
    return list(named_features(model._nested_outputs))


def image_shape(model):
    """(height, width, 3) of a one-image-input model; ExportError otherwise."""
    if len(model.inputs) != 1:
        raise ExportError(f"model {model.name} has {len(model.inputs)} inputs; export takes one image in")
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

    def _dataset(self, batch_size, training):
        from mobilenets.data import make_dataset

        return make_dataset(**self.data.dataset_arguments("train"), batch_size=batch_size, training=training,
                            seed=self.seed)

    def batches(self, batch_size, training):
        """tf.data.Dataset of float32 image batches (B, H, W, 3)."""
        if self.array is not None:
            images = tf.data.Dataset.from_tensor_slices(self.array)
            if training:
                images = images.shuffle(len(self.array), seed=self.seed, reshuffle_each_iteration=True)
            return images.batch(batch_size).map(_to_float)
        return self._dataset(batch_size, training).map(_images_only)

    def take(self, count, skip=0):
        """`count` images as one float32 array, after skipping `skip` (fewer if the source has fewer; none past it)."""
        return self.take_labelled(count, skip)[0]

    def take_labelled(self, count, skip=0):
        """(`take`'s images, their labels), the labels None for a .npz (it holds x only)."""
        if self.array is not None:
            return self.array[skip : skip + count].astype(np.float32), None
        pairs = list(self._dataset(64, training=False).unbatch().skip(skip).take(count).as_numpy_iterator())
        if not pairs:
            return np.zeros((0, *self.shape), np.float32), np.zeros((0,), np.int64)
        return np.stack([image for image, _ in pairs]), np.array([label for _, label in pairs])


def _to_float(images):
    return tf.cast(images, tf.float32)


def _images_only(images, labels):
    return images


# ---------------------------------------------------------------- conversion


def _inference_function(model, shape, probabilities=False, whole_pixels=False):
    """The concrete function to convert: logits, or their softmax; a backbone's features (`feature_names` order).

    whole_pixels: a FakeQuant over [0, 255] in 8 bits (identity on whole pixel
    values) fixes the input's quantization to scale 1: uint8 input = the pixel,
    int8 = pixel - 128, whatever range the calibration images span.
    """

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="image")], autograph=False)
    def scores(image):
        if whole_pixels:
            image = tf.quantization.fake_quant_with_min_max_args(image, min=0.0, max=255.0, num_bits=8)
        logits = model(image, training=False)
        if is_backbone(model):
            return list(named_features(logits).values())
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
    with int8_activation_forms() if mode in INTEGER_MODES else contextlib.nullcontext():
        # traced here: in int8, h-swish and GELU as ops that XNNPACK runs (see deploy.activations)
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
    if is_backbone(model):
        return name_outputs(flatbuffer, dict(zip((tensor.name.split(":")[0] for tensor in function.outputs),
                                                 feature_names(model))))
    return append_float_softmax(flatbuffer) if softmax_after else flatbuffer


def name_outputs(flatbuffer, names):
    """`flatbuffer` (bytes) with its output tensors renamed by `names` ({converter's name: ours}), in its order.

    The converter names a concrete function's outputs after its tensors ('Identity_1'), in an order of its own.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    outputs = {graph.tensors[index].name.decode(): index for index in graph.outputs}
    graph.outputs = [outputs[name] for name in names]
    for name, ours in names.items():
        graph.tensors[outputs[name]].name = ours.encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


# ---------------------------------------------------------------- metadata


def _normalization(model):
    layer = next((layer for layer in model.layers if isinstance(layer, Normalize)), None)
    return None if layer is None else {"mean": list(layer.mean), "std": list(layer.std), "in_model": True}


def describe(model, mode, labels=None, int8_io=False, source="", probabilities=False, uint8_io=False,
             eval_crop_fraction=None, data=None):
    """What a phone app needs to feed the model and read its answer (the embedded and sidecar JSON);
    eval_crop_fraction: the central crop the model was validated with (a run's), None when unknown.
    data: the run's data, as `data_record` (evaluation scores the file on the images the run held out).
    A backbone's answer: "outputs", its feature maps by name in the file's order, instead of "output"."""
    height, width, _ = image_shape(model)
    dtype = "int8" if int8_io else "uint8" if uint8_io else "float32"
    note = "raw RGB pixels resized to the input size; the model normalizes them in its first layer"
    if int8_io or uint8_io:
        note += f"; {dtype} input = round(pixel / scale + zero_point) with the input tensor's quantization"
    description = {
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
        "data": data,
    }
    if is_backbone(model):
        features = named_features(model._nested_outputs)
        outputs = [{"name": name, "shape": [1, *map(int, tensor.shape[1:])], "dtype": dtype}
                   for name, tensor in features.items()]
        return {**description, "outputs": outputs, "labels": None}
    output = {"kind": "probabilities" if probabilities else "logits", "num_classes": int(model.outputs[0].shape[-1]),
              "dtype": dtype}
    return {**description, "output": output, "labels": labels}


def _tensor_quantization(details):
    scale, zero_point = details["quantization"]
    return {"scale": float(scale), "zero_point": int(zero_point)} if scale else None


def with_tensor_quantization(description, predictor):
    """`description` plus the (scale, zero point) of the file's input and output tensors (None when float)."""
    image = {**description["input"], "quantization": _tensor_quantization(predictor.input)}
    description = {**description, "input": image}
    if "outputs" in description:
        outputs = [{**entry, "quantization": _tensor_quantization(details)}
                   for entry, details in zip(description["outputs"], predictor.outputs)]
        return {**description, "outputs": outputs}
    return {**description, "output": {**description["output"], "quantization": _tensor_quantization(predictor.output)}}


def read_metadata(path):
    """The description `export` embedded in a .tflite file, or None."""
    return litert.read_metadata(path, METADATA_NAME)


def export_description(path):
    """The export's own description of a .tflite (embedded, else the <file>.json sidecar), or None."""
    try:
        described = read_metadata(path)
    except Exception:  # noqa: BLE001 (a damaged file: the interpreter says what is wrong with it)
        described = None
    if described is None:
        try:
            with open(path + ".json") as f:
                described = json.load(f)
        except (OSError, ValueError):
            return None
    return described if isinstance(described, dict) else None


def data_record(data):
    """The description's record of a run's data (`runs.DataSettings`): its dataset and how the run split it
    (validation_fraction and split_seed of folder and npz data); None for a model without a run."""
    if data is None or not data.from_run:
        return None
    return {"dataset": data.dataset, **data.options}


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


BACKBONE_NOTE = ("no ImageClassifier metadata: a backbone, feature maps out (names, shapes and quantization in "
                 "the 'mobilenets' description and the .json)")


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
    output: str  # 'logits' or 'probabilities' (the Keras side is the same: softmax of its logits), 'features NAME'
    max_abs_diff: float
    max_abs_logit: float
    logit_range: float  # max - min over the batch
    top1_agreement: Optional[float]  # None for features
    logit_correlation: float  # Pearson, over all values of the batch

    @property
    def relative_diff(self):
        return self.max_abs_diff / max(self.max_abs_logit, 1.0)


def _compare(expected, got, images, image_source, output, classes=True):
    """`Parity` of Keras' `expected` and the file's `got` outputs (correlation nan for constant outputs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = float(np.corrcoef(expected.ravel(), got.ravel())[0, 1])
    return Parity(
        images=len(images),
        image_source=image_source,
        output=output,
        max_abs_diff=float(np.max(np.abs(expected - got))),
        max_abs_logit=float(np.max(np.abs(expected))),
        logit_range=float(np.ptp(expected)),
        top1_agreement=float(np.mean(expected.argmax(-1) == got.argmax(-1))) if classes else None,
        logit_correlation=correlation,
    )


def _keras_outputs(model, images, probabilities):
    logits = model(tf.convert_to_tensor(images), training=False)
    return (tf.nn.softmax(logits) if probabilities else logits).numpy()


def parity(model, predictor, images, image_source="", probabilities=False, keras_outputs=None):
    """`Parity` of a Keras model and a `TFLitePredictor` on raw-pixel `images`.

    probabilities: the file outputs a softmax, compared with the softmax of the Keras logits.
    keras_outputs: the model's, when already computed (`_keras_outputs`).
    """
    if keras_outputs is None:
        keras_outputs = _keras_outputs(model, images, probabilities)
    output = "probabilities" if probabilities else "logits"
    return _compare(keras_outputs, predictor.predict(images), images, image_source, output)


def feature_parity(model, predictor, images, image_source=""):
    """[`Parity` of each output] of a backbone and its file (`feature_names` order) on raw-pixel `images`."""
    expected = named_features(model(tf.convert_to_tensor(images), training=False))
    return [_compare(expected[name].numpy(), got, images, image_source, f"features {name}", classes=False)
            for name, got in zip(expected, predictor.predict_outputs(images))]


def _correlation_text(correlation):
    return f"{correlation:.4f}" if math.isfinite(correlation) else "n/a (constant outputs)"


def parity_warning(result, mode):
    """One line when a quantized classifier's file agrees with the Keras model on top-1 for less than
    LOW_AGREEMENT of the parity images, or correlates below LOW_CORRELATION, else None."""
    if mode in ("none", "float16") or result.top1_agreement is None:
        return None
    correlation = result.logit_correlation
    if result.top1_agreement >= LOW_AGREEMENT and not (math.isfinite(correlation) and correlation < LOW_CORRELATION):
        return None
    value = "probability" if result.output == "probabilities" else "logit"
    return (f"warning: the {mode} file agrees with the Keras model on top-1 for {result.top1_agreement:.1%} of "
            f"{result.images} images, {value} correlation {_correlation_text(correlation)} (below "
            f"{LOW_AGREEMENT:.0%} / {LOW_CORRELATION:g}; a trained model's int8 file agrees on about 97%): calibrate "
            f"on more images like the ones it will see (--representative-data, --calibration-images), try --quantize "
            f"qat, or export float16; --min-agreement {LOW_AGREEMENT:g} refuses such a file")


def one_class_warning(keras_outputs, labels, class_names):
    """`mobilenets.learning.dominant_class_warning` of the Keras model's answers on the parity images, when
    their `labels` are known and span the classes (on random pixels, or images mostly of one class, one
    answer for most of them says nothing of the model), else None."""
    if labels is None or keras_outputs.ndim != 2 or not len(labels):
        return None
    classes = keras_outputs.shape[-1]
    if learning.dominant_class_warning(np.bincount(labels, minlength=classes).tolist(), class_names):
        return None
    predicted = np.bincount(keras_outputs.argmax(-1), minlength=classes).tolist()
    return learning.dominant_class_warning(predicted, class_names)


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
    if mode not in ("none", "float16") and min_agreement is not None and result.top1_agreement is not None \
            and result.top1_agreement < min_agreement:
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
    outputs: Optional[List[str]] = None  # a backbone's feature outputs, in the file's order
    # low parity, one class answered, the run still training (one line each)
    warnings: List[str] = dataclasses.field(default_factory=list)

    def as_dict(self):
        return dataclasses.asdict(self)


def _check_counts(counts):
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class QuantizationSettings:
    """How `export` quantizes (one of MODES) and the images it calibrates, fine-tunes and checks on.

    representative_data: dataset name or .npz (see `ImageSource`; default: the run's own training
        images, read as it trained on them, none it held out: `runs.run_data`); required for int8 and
        qat, and the parity batch whenever there is one (else uniform random pixels).
    int8_io / uint8_io: integer input and output tensors; MediaPipe takes uint8, not int8.
    qat_steps / qat_epochs: QAT fine-tuning length (default one epoch of the images).
    seed: of the images' order and of random pixels.
    """

    quantize: str = "none"
    representative_data: Optional[str] = None
    data_dir: Optional[str] = None
    calibration_images: int = 200
    int8_io: bool = False
    uint8_io: bool = False
    qat_steps: Optional[int] = None
    qat_epochs: Optional[float] = None
    qat_batch_size: int = 32
    qat_learning_rate: float = 1e-5
    seed: int = 0

    def check(self):
        _check_mode(self.quantize, self.int8_io, self.uint8_io)
        _check_counts({"calibration_images": self.calibration_images, "qat_batch_size": self.qat_batch_size})
        for name in ("qat_steps", "qat_epochs"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"{name} must be positive, got {value!r}")


@dataclasses.dataclass(frozen=True)
class CheckSettings:
    """How `export` checks and times the file it wrote: parity with the Keras model on `parity_images`
    images (min_agreement: fail a quantized classifier whose top-1 agreement is lower), and the median
    LiteRT latency of `latency_runs` invokes on `threads` threads."""

    parity_images: int = 32
    min_agreement: Optional[float] = None
    threads: int = 1
    latency_runs: int = 50

    def check(self):
        _check_counts({"parity_images": self.parity_images, "threads": self.threads, "latency_runs": self.latency_runs})


def _settings(quantization, checks, options):
    """(QuantizationSettings, CheckSettings, build_model arguments) of `export`'s arguments: the fields of
    either given one by one in `options` (quantize="int8", latency_runs=2, ...) replace theirs."""
    options = dict(options)

    def settings(given, kind):
        fields = {field.name: options.pop(field.name) for field in dataclasses.fields(kind) if field.name in options}
        return dataclasses.replace(given or kind(), **fields)

    quantization, checks = settings(quantization, QuantizationSettings), settings(checks, CheckSettings)
    quantization.check()
    checks.check()
    return quantization, checks, options


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
    """(raw-pixel batch for the parity check, where it comes from, its labels or None): uniform random pixels
    without images, or when a run's own images cannot be read (a float export does not need them)."""
    if images is None:
        return random_images(count, shape, seed), "uniform random pixels", None
    try:
        batch, labels = images.take_labelled(count, skip=skip)
        if len(batch) < count:  # a small source: check on its first images instead
            batch, labels = images.take_labelled(count)
    except DataError as error:
        if not images.data.from_run:
            raise
        return random_images(count, shape, seed), f"uniform random pixels (the run's images: {_short(error)})", None
    if not len(batch):
        return random_images(count, shape, seed), "uniform random pixels", None
    return batch, images.description, labels


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


@dataclasses.dataclass
class _Job:
    """One export before conversion: the source model, its images, and what the file outputs."""

    source: Source
    images: Optional[ImageSource]  # calibration, QAT and parity images (None: random pixels for parity)
    calibration: Optional[np.ndarray]
    check_images: np.ndarray
    check_source: str
    check_labels: Optional[np.ndarray]  # of check_images; None for random pixels and a .npz of x only
    labels: Optional[List[str]]  # a classifier's class names
    probabilities: bool  # a classifier's softmax out
    features: Optional[List[str]]  # a backbone's output names, in the file's order

    @property
    def model(self):
        return self.source.model


def _prepare(source, which, build_kwargs, quantization, checks, labels, logits, progress):
    """The `_Job` of `export`'s arguments; one-line errors for what does not fit."""
    if isinstance(source, keras.Model):
        source = Source(source, source.name)
    else:
        progress(f"loading {source}")
        source = load_source(source, which, **build_kwargs)
    shape, mode, seed = image_shape(source.model), quantization.quantize, quantization.seed
    images = _image_source(quantization.representative_data, quantization.data_dir, source, shape, seed)
    if mode in INTEGER_MODES and images is None:
        raise ConfigError(NEEDS_IMAGES.format(mode=mode))
    names, probabilities, features = _outputs(source, labels, logits, mode, checks.min_agreement)
    if mode in INTEGER_MODES:
        progress(f"reading {quantization.calibration_images} calibration images of {images.description}")
    calibration = _calibration_images(images, quantization.calibration_images, mode) if mode in INTEGER_MODES else None
    skip = 0 if calibration is None else len(calibration)
    check_images, check_source, check_labels = _check_images(images, checks.parity_images, skip, shape, seed)
    return _Job(source, images, calibration, check_images, check_source, check_labels, names, probabilities,
                features)


def _outputs(source, labels, logits, mode, min_agreement):
    """(class names, softmax out, None) of a classifier; (None, False, output names) of a backbone."""
    model = source.model
    if not is_backbone(model):
        num_classes = int(model.outputs[0].shape[-1])
        data = source.data or runs.DataSettings(None)
        names = class_names(dataset_labels(labels, data.dataset, data.data_dir, num_classes), num_classes)
        return names, not logits, None
    for value, option in ((labels, "--labels"), (min_agreement, "--min-agreement")):
        if value is not None:
            raise ConfigError(f"{option} is for classifiers; {model.name} is a backbone (features out, no classes): "
                              "drop it")
    if mode == "qat":
        raise ConfigError(f"--quantize qat distills class scores; {model.name} is a backbone (features out): "
                          "export it with --quantize int8")
    return None, False, feature_names(model)


@dataclasses.dataclass
class _Deployed:
    """The graph that is converted: the model's deployed form (`deploy.tuning.deployed_model`), after QAT."""

    model: keras.Model
    note: Optional[str]
    qat_steps: Optional[int] = None
    qat_loss: Optional[List[float]] = None


def _deploy(job, quantization, keep_masks, threads, progress):
    q = quantization
    if learned_group_convs(job.model) and not keep_masks:
        progress("converting the learned group convs, each block's forms timed in LiteRT")
    model, note = deployed_model(job.model, q.quantize, keep_masks, threads)
    if q.quantize != "qat":
        return _Deployed(model, note)
    progress("fine-tuning quantize-aware (QAT)")
    model, steps, loss = _qat(model, job.images, job.calibration, q.qat_steps, q.qat_epochs, q.qat_batch_size,
                              q.qat_learning_rate)
    return _Deployed(model, note, steps, loss)


def _file_bytes(job, deployed, quantization):
    """(the .tflite bytes with their metadata, our description in them). A classifier carries the standard TFLite
    metadata MediaPipe's ImageClassifier reads; a backbone none (it has no classes), its outputs named."""
    q, source = quantization, job.source
    flatbuffer = convert(deployed, q.quantize, job.calibration, q.int8_io, job.probabilities, q.uint8_io)
    data = source.data or runs.DataSettings(None)
    description = describe(job.model, q.quantize, job.labels, q.int8_io, source.description, job.probabilities,
                           q.uint8_io, data.eval_crop_fraction, data_record(source.data))
    described = embed_metadata(flatbuffer, METADATA_NAME, json.dumps(description).encode())
    if job.features is not None:
        return described, description
    metadata = standard_metadata(job.model, q.quantize, job.labels, litert.io_tensors(flatbuffer), job.probabilities,
                                 source.description)
    labels = {tflite_metadata.LABELS_FILE: tflite_metadata.labels_text(job.labels)}
    return tflite_metadata.populate(described, metadata, labels), description


def _checked_parity(job, predictor, mode, min_agreement):
    """(the file's `Parity` with the Keras model (a backbone's: of its output that differs most), the warnings
    of a classifier's: `parity_warning`, `one_class_warning`); ExportError when the file does not compute what
    the model computes, or agrees less than `min_agreement`."""
    if job.features is None:
        expected = _keras_outputs(job.model, job.check_images, job.probabilities)
        result = parity(job.model, predictor, job.check_images, job.check_source, job.probabilities, expected)
        check_parity(result, mode, min_agreement)
        warnings = [parity_warning(result, mode), one_class_warning(expected, job.check_labels, job.labels)]
        return result, [warning for warning in warnings if warning]
    results = feature_parity(job.model, predictor, job.check_images, job.check_source)
    for result in results:
        check_parity(result, mode)
        check_quantized_features(result, mode)
    return max(results, key=lambda result: result.relative_diff), []


def check_quantized_features(result, mode):
    """ExportError when a quantized backbone's output is off by more than QUANTIZED_FEATURE_TOLERANCE of its
    largest |value|: no class scores to compare, this catches a wrong scale or layer, not rounding (random
    backbones' int8 stride-32 maps are off by 30-45% of it, their correlation 0.83-0.86)."""
    if mode in ("none", "float16") or result.max_abs_diff <= QUANTIZED_FEATURE_TOLERANCE * result.max_abs_logit:
        return
    raise ExportError(f"the {mode} .tflite {result.output} differ from Keras by {result.max_abs_diff:.3g}, over "
                      f"{QUANTIZED_FEATURE_TOLERANCE:.0%} of their largest |value| {result.max_abs_logit:.3g}; "
                      "calibrate on more representative images, or export float16")


def _metadata_summary(path, job):
    if job.features is not None:
        return {"MediaPipe": BACKBONE_NOTE}
    with open(path, "rb") as f:
        tensors = litert.io_tensors(f.read())
    return {**dict(tflite_metadata.summary_lines(tflite_metadata.read(path))), "MediaPipe": mediapipe_note(tensors)}


def _write_checked(job, deployed, flatbuffer, description, output, quantization, checks):
    """Writes `flatbuffer` to `output` and the sidecar JSON if the file passes its parity check; the `ExportReport`."""
    with atomic_path(output, suffix=".tflite") as tmp:
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
        predictor = TFLitePredictor(tmp, checks.threads, feature_maps=job.features is not None)
        result, warnings = _checked_parity(job, predictor, quantization.quantize, checks.min_agreement)
        report = ExportReport(
            output=output,
            metadata_path=output + ".json",
            source=job.source.description,
            mode=quantization.quantize,
            size_bytes=os.path.getsize(tmp),
            parity=result,
            latency_ms=median_latencies_ms([InvokeTimer(predictor)], checks.latency_runs)[0],
            threads=checks.threads,
            latency_runs=checks.latency_runs,
            ops=op_summary(tmp),
            undelegated=undelegated_ops(predictor.interpreter),
            metadata=_metadata_summary(tmp, job),
            calibration=None if job.calibration is None else f"{len(job.calibration)} images of "
                                                             f"{job.images.description}",
            qat_steps=deployed.qat_steps,
            qat_loss=deployed.qat_loss,
            deployment=deployed.note,
            outputs=job.features,
            warnings=([job.source.note] if job.source.note else []) + warnings,
        )
        sidecar = {**with_tensor_quantization(description, predictor), "report": report.as_dict()}
        write_json(report.metadata_path, sidecar)
    return report


def export(source, output, quantization=None, checks=None, labels=None, logits=False, keep_masks=False, which="best",
           progress=None, **options):
    """Exports `source` (see `load_source`; a keras.Model is taken as is) to `output`; returns an `ExportReport`.

    quantization: `QuantizationSettings`; checks: `CheckSettings`. Their fields may also be given
        one by one (quantize="int8", latency_runs=2, ...), which replace theirs; the other `options`
        are build_model arguments of a model name (backbone options: also of a run, `load_source`).
    labels: a text file of class names (default: the run's dataset's, else class_N).
    logits: output the logits (default: their softmax, the probabilities apps expect).
    keep_masks: export a learned-group-conv model as the masked dense model it trains as; by
        default it is exported in its converted form (`mobilenets.deploy.tuning.deployed_model`),
        and the parity check compares the file with the masked model.
    A backbone (`is_backbone`) outputs its features, named as the model names them ('stride_8', ...,
    by stride; 'features' for one output), and carries no classification metadata (see `_file_bytes`).
    A run that is still training exports its checkpoint as it is, the report's first warning says which.
    Writes `output` and `output + '.json'` only when the export passed its checks. progress(line): hears each stage.
    """
    progress = progress or (lambda line: None)
    quantization, checks, build_kwargs = _settings(quantization, checks, options)
    job = _prepare(source, which, build_kwargs, quantization, checks, labels, logits, progress)
    deployed = _deploy(job, quantization, keep_masks, checks.threads, progress)
    mode = quantization.quantize
    progress(f"converting to {'float32' if mode == 'none' else mode}"
             + (f", calibrated on {len(job.calibration)} images" if job.calibration is not None else ""))
    flatbuffer, description = _file_bytes(job, deployed.model, quantization)
    progress(f"checking the file against Keras on {len(job.check_images)} images, timing {checks.latency_runs} "
             "invokes")
    return _write_checked(job, deployed, flatbuffer, description, os.fspath(output), quantization, checks)


def _counts(counts):
    return ", ".join(f"{name} x{count}" for name, count in counts.items())


def format_report(report):
    """The report as aligned 'name  value' lines."""
    check = report.parity
    value = {"probabilities": "probability", "logits": "logit"}.get(check.output, "feature")
    worst = f" ({check.output.split()[-1]}: the worst of {len(report.outputs)} outputs)" if report.outputs else ""
    if report.mode in ("none", "float16"):
        agreement = (f"max |{value} diff| {check.max_abs_diff:.3g} (largest |{value}| {check.max_abs_logit:.3g}, "
                     f"range {check.logit_range:.3g}){worst}")
    else:
        top1 = "" if check.top1_agreement is None else f"top-1 agreement {check.top1_agreement:.1%}, "
        agreement = (f"{top1}{value} correlation {_correlation_text(check.logit_correlation)}, "
                     f"max |{value} diff| {check.max_abs_diff:.3g}{worst}")
    delegation = f"leaves {_counts(report.undelegated)} to TFLite kernels" if report.undelegated else "runs every op"
    latency = f"{report.latency_ms:.3f} ms, median of {report.latency_runs} invokes, {report.threads} thread(s)"
    lines = [
        ("wrote", f"{report.output} (+ {os.path.basename(report.metadata_path)})"),
        ("source", report.source),
        *([("outputs", ", ".join(report.outputs))] if report.outputs else []),
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
    return "\n".join([f"{name.ljust(width)}  {value}" for name, value in lines] + list(report.warnings))

"""Quantize-aware training (QAT) with tensorflow-model-optimization, for every model family.

Jacob et al. 2018 ("Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference") simulate int8 rounding in training with
fake-quantization nodes so that the weights adapt to it; tfmot implements it
for tf_keras functional models of standard layers. We therefore
`mobilenets.deploy.flatten` the model first (tfmot's Conv+BN+ReLU folding patterns
then apply), annotate the layers tfmot's default 8-bit registry does not know
with our own QuantizeConfigs (tfmot guide, "Quantize custom Keras layer"):

    Normalize, the h-swish / GELU Activation, squeeze-excite's Rescaling and Multiply, and
    AttentionCore (Mobile MQA's matmuls and softmax, MobileNetV4 hybrids)
        OutputQuantizeConfig: an 8-bit output, as tfmot's activations

(Reshape and Permute, the channel shuffle, pass ranges through in tfmot's own
registry.) The activation ranges start at the float model's (`initialize_ranges`),

then we fine-tune with a distillation loss (Hinton et al. 2015; Polino et al.
2018, "Model compression via distillation and quantization"): the fake-quantized
student matches the float model's softmax, so no labels are needed and the
quantized model learns to agree with the float one. BatchNorm statistics are
frozen during fine-tuning (Krishnamoorthi 2018, "Quantizing deep
convolutional networks for efficient inference", sec. 3.2).
"""

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from mobilenets.quiet import held_stderr
from mobilenets.errors import ExportError, first_line
from mobilenets.deploy.flatten import flatten
from mobilenets.models.attention import AttentionCore
from mobilenets.models.layers import Activation, Normalize

quantize = tfmot.quantization.keras


class OutputQuantizeConfig(quantize.QuantizeConfig):
    """Fake-quantizes the layer's output only: 8-bit asymmetric, moving-average range (tfmot's activation quantizer)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        quantizer = quantize.quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False
        )
        return [quantizer]

    def get_config(self):
        return {}


QUANTIZE_CONFIGS = {
    Normalize: OutputQuantizeConfig,
    Activation: OutputQuantizeConfig,
    keras.layers.Multiply: OutputQuantizeConfig,
    keras.layers.Rescaling: OutputQuantizeConfig,
    AttentionCore: OutputQuantizeConfig,  # Mobile MQA's reshapes, matmuls and softmax; its convs are tfmot's
}
# What quantize_apply deserializes besides tfmot's own (our layers are registered Keras serializables).
SCOPE = {"OutputQuantizeConfig": OutputQuantizeConfig}


def _annotate(layer):
    """Wraps `layer` for quantize_apply: our QuantizeConfig where tfmot's registry has none."""
    if isinstance(layer, keras.layers.InputLayer):
        return layer
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.trainable = False  # inference-mode BatchNorm: frozen statistics while fine-tuning
    config = QUANTIZE_CONFIGS.get(type(layer))
    return quantize.quantize_annotate_layer(layer, config() if config else None)


def _check_supported(model):
    registry = quantize.default_8bit.Default8BitQuantizeRegistry()
    for layer in model.layers:
        known = isinstance(layer, (keras.layers.InputLayer, keras.layers.BatchNormalization))  # BN: folded into its conv
        if not (known or type(layer) in QUANTIZE_CONFIGS or registry.supports(layer)):
            raise ExportError(
                f"layer {layer.name} ({type(layer).__name__}) has no 8-bit QuantizeConfig; quantize-aware training "
                "supports this package's layers and tfmot's: export with --quantize int8 instead"
            )


RANGE_VARIABLES = ("output", "post_activation", "quantize_layer")  # activation quantizers' <prefix>_min / _max


def _activation_ranges(model):
    """[(flat layer name or None for the input, min variable, max variable)] of a quantize_apply'd model."""
    ranges = []
    for layer in model.layers:
        variables = {v.name.split("/")[-1].split(":")[0]: v for v in layer.non_trainable_weights}
        for prefix in RANGE_VARIABLES:
            if f"{prefix}_min" in variables:
                # a wrapper quantizes its layer's output; the QuantizeLayer quantizes the model input
                source = layer.layer.name if isinstance(layer, quantize.QuantizeWrapper) else None
                ranges.append((source, variables[f"{prefix}_min"], variables[f"{prefix}_max"]))
    return ranges


def initialize_ranges(student, flat, images):
    """Starts every activation quantizer at the float model's [min, max] over `images` (min/max calibration).

    tfmot starts them at [-6, 6] and moves them by an exponential moving
    average of decay 0.999: a short fine-tune would clip logits and
    h-swish outputs at 6 and waste the int8 grid on [-2, 2] normalized pixels.
    """
    student(images[:8], training=True)  # weight quantizers take their ranges from the weights in a training call
    ranges = _activation_ranges(student)
    probe = keras.Model(flat.inputs, [flat.input if name is None else flat.get_layer(name).output for name, _, _ in ranges])
    values = probe(tf.convert_to_tensor(images), training=False)
    for (_, minimum, maximum), value in zip(ranges, values):
        minimum.assign(tf.minimum(tf.reduce_min(value), 0.0))
        maximum.assign(tf.maximum(tf.reduce_max(value), 0.0))


def quantize_aware_model(model, calibration_images=None):
    """A fake-quantized copy of `model` (flattened, annotated, `quantize_apply`), ready to fine-tune.

    calibration_images: raw pixels to initialize the activation ranges from (`initialize_ranges`).
    """
    flat = flatten(model)
    _check_supported(flat)
    annotated = keras.models.clone_model(flat, clone_function=_annotate)
    with quantize.quantize_scope(SCOPE):
        try:
            student = quantize.quantize_apply(annotated)
        except (ValueError, TypeError, RuntimeError) as error:
            raise ExportError(
                f"tfmot could not quantize {model.name} ({first_line(error, 200)}); export with --quantize int8 instead"
            ) from None
    if calibration_images is not None:
        initialize_ranges(student, flat, calibration_images)
    return student


# Mobile MQA's attention (MobileNetV4 hybrids): XNNPACK (LiteRT 2.3) runs neither op in int8 with two
# activation inputs, but both in float32, so int8 files keep them in float (QUANTIZE / DEQUANTIZE around).
FLOAT_ATTENTION_OPS = ("BATCH_MATMUL", "SOFTMAX")


def convert_int8_float_attention(converter):
    """Full-integer conversion except the attention's matmuls and softmax, kept in float32: every op of a
    MobileNetV4 hybrid then runs in XNNPACK. `converter`: set up for int8 (optimizations, representative
    dataset, inference input/output types) by the caller. As tf.lite.experimental.QuantizationDebugger
    does with `denylisted_ops`, without its debug conversions: calibrate, then quantize but those ops.
    """
    from tensorflow.lite.python import convert as lite_convert  # mlir_quantize: not in tf.lite's public API

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True
    integer_io = converter.inference_input_type in (tf.int8, tf.uint8)  # else float in and out, int8 inside
    with held_stderr():  # the converter's own lines ("fully_quantize: 0, inference_type: 6, ...")
        calibrated = converter.convert()
        return lite_convert.mlir_quantize(
            calibrated,
            disable_per_channel=converter._experimental_disable_per_channel,
            fully_quantize=integer_io,
            input_data_type=converter.inference_input_type or tf.float32,
            output_data_type=converter.inference_output_type or tf.float32,
            denylisted_ops=list(FLOAT_ATTENTION_OPS),
        )


def distillation_loss(teacher_logits, student_logits):
    """Cross-entropy of the student's softmax against the teacher's (temperature 1)."""
    return tf.reduce_mean(
        keras.losses.categorical_crossentropy(tf.nn.softmax(teacher_logits), student_logits, from_logits=True)
    )


EAGER_STEPS = 20  # tracing the fake-quantized train step costs about as much as this many eager steps


def fine_tune(student, teacher, images, steps, learning_rate=1e-5):
    """`steps` Adam steps of distillation from `teacher` on batches of `images` (a tf.data.Dataset of float batches).

    Returns the mean loss of the first and last tenth of the steps (to see that it learns).
    """
    optimizer = keras.optimizers.Adam(learning_rate)

    def step(batch):
        target = teacher(batch, training=False)
        with tf.GradientTape() as tape:
            loss = distillation_loss(target, student(batch, training=True))
        gradients = tape.gradient(loss, student.trainable_variables)
        optimizer.apply_gradients(zip(gradients, student.trainable_variables))
        return loss

    if steps > EAGER_STEPS:
        step = tf.function(step, reduce_retracing=True)
    losses = [float(step(batch)) for batch in images.repeat().take(steps)]
    window = max(1, len(losses) // 10)
    return sum(losses[:window]) / window, sum(losses[-window:]) / window

"""The paper's activations in the forms an export deploys: the same values, written with ops XNNPACK runs in int8.

XNNPACK (LiteRT 2.3) runs HARD_SWISH and GELU in float32 but not in int8, and the TFLite
converter fuses x * relu6(x + 3) / 6 into one HARD_SWISH op. So:

- `int8_activation_forms()`: models traced inside compute h-swish as (x / 6) * relu6(x + 3)
  (MUL, ADD+RELU6, MUL: the converter leaves them apart) and GELU as x * sigmoid(1.702 x)
  (Hendrycks & Gimpel 2016's sigmoid approximation, |error| < 0.021: MUL, LOGISTIC, MUL).
  What int8 and QAT exports trace; the float model, and its training, keep the exact forms.
- `TIMES_SIX` ("hswish_x6", x * relu6(x + 3) = 6 * h-swish: two int8 ops where h-swish takes
  three) and `TimesSixSqueezeExcite` (its gate relu6(z) = 6 * hard_sigmoid(z - 3)): the layers of
  the MobileNetV3 copy `mobilenets.deploy.folding.fold_hard_swish_scale` builds, which folds each
  factor 6 into the weights that read it.

The model layers look their activation up by name in `mobilenets.models.layers.ACTIVATIONS`
when called; the forms here stand in there.
"""

import contextlib

import tensorflow as tf

from mobilenets.models.layers import ACTIVATIONS, SqueezeExcite, register


def hard_swish_as_int8_ops(x):
    """h-swish (Howard et al. 2019, MobileNetV3) as (x / 6) * relu6(x + 3), which the converter does not fuse."""
    return (x * (1.0 / 6.0)) * tf.nn.relu6(x + 3.0)


def gelu_as_int8_ops(x):
    """GELU as x * sigmoid(1.702 x) (Hendrycks & Gimpel 2016)."""
    return x * tf.sigmoid(1.702 * x)


INT8_FORMS = {"hswish": hard_swish_as_int8_ops, "gelu": gelu_as_int8_ops}


@contextlib.contextmanager
def int8_activation_forms():
    """Layers called (traced) inside compute h-swish and GELU in their `INT8_FORMS`."""
    exact = {name: ACTIVATIONS[name] for name in INT8_FORMS}
    ACTIVATIONS.update(INT8_FORMS)
    try:
        yield
    finally:
        ACTIVATIONS.update(exact)


TIMES_SIX = "hswish_x6"


def hard_swish_times_six(x):
    """6 * h-swish(x) = x * relu6(x + 3)."""
    return x * tf.nn.relu6(x + 3.0)


ACTIVATIONS[TIMES_SIX] = hard_swish_times_six  # a deployed copy's ConvBNAct / Activation name it


@register
class TimesSixSqueezeExcite(SqueezeExcite):
    """A squeeze-excite whose gate is relu6(z) = 6 * hard_sigmoid(z - 3): with + 3 in the expand bias, 6 times
    SqueezeExcite's gate, in one fused CONV_2D+RELU6 (`mobilenets.deploy.folding.fold_hard_swish_scale`)."""

    def gate(self, excitation):
        return tf.nn.relu6(excitation)

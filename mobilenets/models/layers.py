"""Building-block layers shared by every MobileNet-family model.

All layers are registered Keras serializables (package ``mobilenets``), so a
saved model reloads without ``custom_objects``.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mobilenets.errors import ModelError

register = keras.saving.register_keras_serializable(package="mobilenets")


def leaf_layers(model):
    """Every leaf layer, nested ones included, in call order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if not list(layer._flatten_layers(include_self=False, recursive=False))
    ]


def make_divisible(value, divisor=8, min_value=None):
    """Rounds a channel count to a multiple of `divisor`, never dropping below 90%.

    The rule of the TF-slim MobileNet code, used by MobileNetV2 and V3.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def hard_sigmoid(x):
    """relu6(x + 3) / 6 (Howard et al. 2019, MobileNetV3, eq. 1)."""
    return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def hard_swish(x):
    """x * hard_sigmoid(x) (Howard et al. 2019, MobileNetV3)."""
    return x * hard_sigmoid(x)


def gelu(x):
    """x * Phi(x), the exact (erf) GELU (Hendrycks & Gimpel 2016), as MobileNetV4-Hybrid-Large uses it."""
    return tf.nn.gelu(x)


# Activation name -> function. Layers look theirs up when called, not when built, so that an export
# can trace other forms of the same functions (mobilenets.deploy.activations).
ACTIVATIONS = {
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "hswish": hard_swish,
    "gelu": gelu,
    None: None,
}


def get_activation(name):
    if name not in ACTIVATIONS:
        raise ModelError(f"unknown activation {name!r}; choose one of {sorted(k for k in ACTIVATIONS if k)} or None")
    return ACTIVATIONS[name]


@register
class Activation(keras.layers.Layer):
    """Element-wise activation by name: 'relu', 'relu6', 'hswish' or 'gelu'."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        get_activation(activation)  # an unknown name fails here, not when called
        self.activation = activation

    def call(self, inputs):
        return get_activation(self.activation)(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


# Per-channel (mean, std) in raw [0, 255] pixel units. The model divides by
# these in its first layer, so data pipelines and phone apps feed raw pixels.
NORMALIZATIONS = {
    "inception": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),  # to [-1, 1], as keras.applications
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    "cifar10": ((125.307, 122.95, 113.865), (62.993, 62.089, 66.705)),
    "cifar100": ((129.304, 124.07, 112.434), (68.17, 65.392, 70.418)),
    "unit": ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),  # to [0, 1] (timm's MIIL ImageNet-21k weights)
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


@register
class Normalize(keras.layers.Layer):
    """(x - mean) / std per channel; the model's first layer (raw pixels in)."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    @classmethod
    def named(cls, normalization, **kwargs):
        """A name of NORMALIZATIONS, or a checkpoint's own (mean, std) in raw pixel units."""
        if not isinstance(normalization, str) and len(normalization) == 2:
            return cls(*normalization, **kwargs)
        if normalization not in NORMALIZATIONS:
            raise ModelError(f"unknown normalization {normalization!r}; choose one of {sorted(NORMALIZATIONS)}")
        mean, std = NORMALIZATIONS[normalization]
        return cls(mean, std, **kwargs)

    def call(self, inputs):
        inputs = tf.cast(inputs, self.compute_dtype)
        scale = [1.0 / s for s in self.std]
        offset = [-m / s for m, s in zip(self.mean, self.std)]
        if len(set(scale)) == 1 and len(set(offset)) == 1:
            return inputs * tf.constant(scale[0], self.compute_dtype) + tf.constant(offset[0], self.compute_dtype)
        # Per channel: a 1x1 depthwise conv with bias, one DEPTHWISE_CONV_2D in the .tflite. As a MUL and an ADD
        # broadcast over 3 channels, XNNPACK ran it so slowly that int8 Conv-S at 224 with ImageNet's mean / std
        # took 1.7x the time of Conv-S normalized by scalars; as one op, 1.14x.
        kernel = tf.constant(scale, self.compute_dtype, shape=(1, 1, len(scale), 1))
        scaled = tf.nn.depthwise_conv2d(inputs, kernel, strides=(1, 1, 1, 1), padding="VALID")
        return tf.nn.bias_add(scaled, tf.constant(offset, self.compute_dtype))

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std)}


def batch_norm(name, momentum=0.99, epsilon=1e-3):
    """BatchNorm with keras.applications' epsilon 1e-3 by default (PyTorch's, and so timm's, is 1e-5)."""
    return keras.layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=name)


# How strided convolutions pad: "same" is TensorFlow's SAME (the extra row and column at the bottom and
# right, as keras.applications and the TF Model Garden train); "symmetric" is PyTorch's (kernel // 2 on
# every side, as timm's MobileNetV3/V4 weights were trained). Stride-1 convs pad alike either way.
PADDINGS = ("same", "symmetric")


def check_padding(padding):
    if padding not in PADDINGS:
        raise ModelError(f"unknown padding {padding!r}; choose one of {', '.join(PADDINGS)}")
    return padding


class _ConvNormAct(keras.layers.Layer):
    """A convolution `self.conv` (set by subclasses) -> BatchNorm -> activation. With
    padding="symmetric" a strided conv reads its input padded by `pad_width` on every side."""

    def __init__(self, kernel_size, strides, activation, bn_momentum, bn_epsilon=1e-3, padding="same", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.strides = kernel_size, strides
        self.activation, self.bn_momentum = activation, bn_momentum
        self.bn_epsilon, self.padding = bn_epsilon, check_padding(padding)
        # timm's get_padding: ((stride - 1) + (kernel - 1)) // 2 on each side
        self.pad_width = ((strides - 1) + (kernel_size - 1)) // 2 if padding == "symmetric" and strides > 1 else 0

    @property
    def conv_padding(self):
        """The Keras padding of `self.conv`: 'valid' after an explicit symmetric pad, else 'same'."""
        return "valid" if self.pad_width else "same"

    def _add_norm_act(self):
        self.bn = batch_norm("bn", self.bn_momentum, self.bn_epsilon)
        get_activation(self.activation)  # an unknown name fails here, not when called

    def call(self, inputs, training=None):
        if self.pad_width:
            p = self.pad_width
            inputs = tf.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]])
        x = self.bn(self.conv(inputs), training=training)
        activation = get_activation(self.activation)
        return activation(x) if activation else x

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "activation": self.activation,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "padding": self.padding,
        }


@register
class GroupConv2D(keras.layers.Conv2D):
    """A standard group convolution (ResNeXt, Xie et al. 2017; IGCV3, Sun et al. 2018) computed by
    TensorFlow's own grouped Conv2D. Keras compiles a grouped Conv2D with XLA, whose CPU gradient made a
    MobileNetV2-GC training step 8x slower on a CPU; this is the same function, kernel and variables."""

    def _jit_compiled_convolution_op(self, inputs, kernel):
        return self.convolution_op(inputs, kernel)


@register
class ConvBNAct(_ConvNormAct):
    """Conv (no bias) -> BatchNorm -> activation.

    `groups` > 1 gives a standard group convolution (GC); a `condense_factor`
    makes the 1x1 conv a `LearnedGroupConv` (LGC) with that many groups.
    """

    def __init__(
        self,
        filters,
        kernel_size=1,
        strides=1,
        groups=1,
        condense_factor=None,
        activation="relu6",
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        padding="same",
        **kwargs,
    ):
        super().__init__(kernel_size, strides, activation, bn_momentum, bn_epsilon, padding, **kwargs)
        self.filters, self.groups, self.condense_factor = filters, groups, condense_factor
        if condense_factor:
            if kernel_size != 1 or strides != 1:
                raise ModelError("learned group convolution is implemented for 1x1, stride-1 convs only")
            self.conv = LearnedGroupConv(filters, groups, condense_factor, name="conv")
        else:
            self.conv = (GroupConv2D if groups > 1 else keras.layers.Conv2D)(
                filters, kernel_size, strides=strides, padding=self.conv_padding, groups=groups, use_bias=False,
                name="conv"
            )
        self._add_norm_act()

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "groups": self.groups,
            "condense_factor": self.condense_factor,
        }


@register
class DepthwiseBNAct(_ConvNormAct):
    """DepthwiseConv2D (no bias, TF SAME padding unless padding="symmetric") -> BatchNorm -> activation."""

    def __init__(self, kernel_size=3, strides=1, activation="relu6", bn_momentum=0.99, bn_epsilon=1e-3, padding="same",
                 **kwargs):
        super().__init__(kernel_size, strides, activation, bn_momentum, bn_epsilon, padding, **kwargs)
        self.conv = keras.layers.DepthwiseConv2D(
            kernel_size, strides=strides, padding=self.conv_padding, use_bias=False, name="depthwise"
        )
        self._add_norm_act()


@register
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-excite with a hard-sigmoid gate (Hu et al. 2018; MobileNetV3 sec. 5.3)."""

    def __init__(self, squeeze_channels, **kwargs):
        gate = kwargs.pop("gate", "hard_sigmoid")  # a config key of earlier versions, always this value in files
        super().__init__(**kwargs)
        if gate != "hard_sigmoid":
            raise ModelError(f"{self.name}: the squeeze-excite gate is the hard sigmoid, got gate={gate!r}")
        self.squeeze_channels = squeeze_channels

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.reduce = keras.layers.Conv2D(self.squeeze_channels, 1, name="reduce")
        self.expand = keras.layers.Conv2D(channels, 1, name="expand")
        super().build(input_shape)

    def gate(self, excitation):
        """Each channel's scale from its excitation: hard_sigmoid (MobileNetV3 sec. 5.3)."""
        return hard_sigmoid(excitation)

    def call(self, inputs):
        x = tf.reduce_mean(inputs, axis=(1, 2), keepdims=True)
        x = tf.nn.relu(self.reduce(x))
        return inputs * self.gate(self.expand(x))

    def get_config(self):
        return {**super().get_config(), "squeeze_channels": self.squeeze_channels}


@register
class ChannelShuffle(keras.layers.Layer):
    """Interleaves `groups` channel groups: reshape (G, C/G), transpose, flatten.

    The permutation between the two group convolutions of IGCV3 (Sun et al.
    2018) and ShuffleNet (Zhang et al. 2018).
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def call(self, inputs):
        height, width, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        x = tf.reshape(inputs, [-1, height, width, self.groups, channels // self.groups])
        x = tf.transpose(x, [0, 1, 2, 4, 3])
        return tf.reshape(x, [-1, height, width, channels])

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@register
class LearnedGroupConv(keras.layers.Layer):
    """1x1 learned group convolution (Huang et al. 2018, CondenseNet, sec. 3.1).

    The kernel is multiplied by a non-trainable 0/1 mask. Output channel o
    belongs to group o mod G. Each `condense_step` lets every group drop the
    in/C input channels with the smallest summed |W * mask| over its outputs;
    after C - 1 steps every group reads in/C inputs, so the layer equals a
    standard group convolution over gathered inputs (see `mobilenets.models.condensation`).
    """

    def __init__(self, filters, groups=4, condense_factor=4, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.groups, self.condense_factor = filters, groups, condense_factor
        if groups < 1 or condense_factor < 1:
            raise ModelError(f"groups ({groups}) and condense_factor ({condense_factor}) must be >= 1")
        if filters % groups:
            raise ModelError(f"{self.name}: {filters} output channels are not divisible by groups={groups}")

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        if in_channels % self.condense_factor:
            raise ModelError(
                f"{self.name}: {in_channels} input channels are not divisible by condense_factor={self.condense_factor}"
            )
        self.kernel = self.add_weight(
            "kernel", (1, 1, in_channels, self.filters), initializer="glorot_uniform", trainable=True
        )
        self.mask = self.add_weight("mask", (in_channels, self.filters), initializer="ones", trainable=False)
        self.stage = self.add_weight("stage", (), dtype=tf.int32, initializer="zeros", trainable=False)
        super().build(input_shape)

    @property
    def in_channels(self):
        return int(self.kernel.shape[2])

    def masked_kernel(self):
        return self.kernel * tf.cast(self.mask, self.kernel.dtype)[None, None]

    def call(self, inputs):
        return tf.nn.conv2d(inputs, tf.cast(self.masked_kernel(), inputs.dtype), strides=1, padding="VALID")

    def group_lasso(self):
        """sum over groups g and inputs j of ||W[j, outputs of g]||_2 (CondenseNet eq. 2)."""
        weight = tf.cast(self.masked_kernel()[0, 0], tf.float32)  # (in, out), HWIO
        per_group = tf.reduce_sum(tf.reshape(tf.square(weight), [self.in_channels, -1, self.groups]), axis=1)
        positive = per_group > 0
        return tf.reduce_sum(tf.where(positive, tf.sqrt(tf.where(positive, per_group, 1.0)), 0.0))

    def condense_step(self):
        """Drops in/C inputs per group; returns False once C - 1 steps are done."""
        if int(self.stage.numpy()) >= self.condense_factor - 1:
            return False
        weight = np.abs(self.masked_kernel()[0, 0].numpy())
        mask = self.mask.numpy()
        drop = self.in_channels // self.condense_factor
        for group in range(self.groups):
            importance = weight[:, group :: self.groups].sum(axis=1)
            active = np.flatnonzero(mask[:, group :: self.groups].any(axis=1))
            weakest = active[np.argsort(importance[active], kind="stable")[:drop]]
            mask[weakest, group :: self.groups] = 0.0
        self.mask.assign(mask)
        self.stage.assign_add(1)
        return True

    def kept_inputs(self):
        """Per group, the sorted input channels its outputs still read."""
        mask = self.mask.numpy()
        return [np.flatnonzero(mask[:, group :: self.groups].any(axis=1)) for group in range(self.groups)]

    def sparsity(self):
        return 1.0 - float(tf.reduce_mean(tf.cast(self.mask, tf.float32)))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "groups": self.groups,
            "condense_factor": self.condense_factor,
        }


@register
class LayerScale(keras.layers.Layer):
    """Per-channel learned scale of a residual branch, initialized small (Touvron et al. 2021, CaiT;
    MobileNetV4's hybrid models, Qin et al. 2024, sec. 5, with init 1e-5 as in the TF Model Garden)."""

    def __init__(self, init_value=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.init_value = float(init_value)

    def build(self, input_shape):
        self.gamma = self.add_weight(
            "gamma", (int(input_shape[-1]),), initializer=keras.initializers.Constant(self.init_value), trainable=True
        )
        super().build(input_shape)

    def call(self, inputs):
        return inputs * tf.cast(self.gamma, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "init_value": self.init_value}


@register
class DropPath(keras.layers.Dropout):
    """Stochastic depth: drops a residual branch for whole examples at `rate` in training and scales
    the kept ones by 1 / (1 - rate); the identity at inference (Huang et al. 2016, "Deep Networks
    with Stochastic Depth"; per example as timm's and the Model Garden's drop path). A Dropout with
    noise shape (batch, 1, 1, 1), so the trainer reseeds it like any dropout."""

    def __init__(self, rate, **kwargs):
        kwargs.pop("noise_shape", None)
        super().__init__(rate, **kwargs)

    def _get_noise_shape(self, inputs):
        return tf.concat([tf.shape(inputs)[:1], tf.ones([tf.rank(inputs) - 1], tf.int32)], axis=0)


class ResidualBlock(keras.layers.Layer):
    """A block whose output is its input plus a branch when the shapes match. With drop_path_rate
    > 0 the branch is dropped per example in training (stochastic depth, see DropPath); subclasses
    set `strides`, `filters` and, in build, `in_channels` (or override `has_residual`), and end
    `call` with `self.add_residual(inputs, branch, training)`."""

    def __init__(self, drop_path_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(drop_path_rate, (int, float)) and 0 <= drop_path_rate < 1):
            raise ModelError(f"{self.name}: drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        self.drop_path_rate = float(drop_path_rate)

    def build(self, input_shape):
        self.drop_path = None
        if self.drop_path_rate and self.has_residual:
            self.drop_path = DropPath(self.drop_path_rate, name="drop_path")
        super().build(input_shape)

    @property
    def has_residual(self):
        return self.strides == 1 and self.in_channels == self.filters

    def add_residual(self, inputs, branch, training=None):
        if not self.has_residual:
            return branch
        if self.drop_path is not None:
            branch = self.drop_path(branch, training=training)
        return inputs + branch

    def get_config(self):
        return {**super().get_config(), "drop_path_rate": self.drop_path_rate}

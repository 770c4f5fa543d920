"""Mobile MQA: the attention block of the MobileNetV4 hybrid models (Qin et al. 2024, sec. 4)."""

import math

import tensorflow as tf
import tf_keras as keras

from mobilenets.errors import ModelError
from mobilenets.models.layers import DepthwiseBNAct, LayerScale, ResidualBlock, batch_norm, check_padding, register


def multi_query_attention(query, key, value, heads, key_dim, value_dim):
    """softmax(q k^T / sqrt(key_dim)) v for NHWC q (heads * key_dim channels) and one shared k and v; NHWC out."""
    height, width = query.shape[1], query.shape[2]
    q = tf.reshape(query, [-1, height * width * heads, key_dim])  # rows: (pixel, head)
    k = tf.reshape(key, [-1, key.shape[1] * key.shape[2], key_dim])
    v = tf.reshape(value, [-1, value.shape[1] * value.shape[2], value_dim])
    logits = tf.matmul(q * tf.cast(1.0 / math.sqrt(key_dim), q.dtype), k, transpose_b=True)
    out = tf.matmul(tf.nn.softmax(logits), v)
    return tf.reshape(out, [-1, height, width, heads * value_dim])


@register
class AttentionCore(keras.layers.Layer):
    """The weightless middle of Mobile MQA, [q, k, v] -> attention output: for flat graphs (deploy.flatten)."""

    def __init__(self, heads, key_dim, value_dim, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim

    def call(self, inputs):
        query, key, value = inputs
        return multi_query_attention(query, key, value, self.heads, self.key_dim, self.value_dim)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "key_dim": self.key_dim, "value_dim": self.value_dim}


@register
class MobileMQA(ResidualBlock):
    """Multi-query attention with spatially downsampled keys and values (Qin et al. 2024, eq. 2 and fig. 5).

    BatchNorm -> `heads` query heads (1x1 conv), one shared key and one shared
    value head (Shazeer 2019, multi-query attention), each read from the input
    after a stride-`kv_strides` 3x3 depthwise conv + BN when kv_strides > 1 ->
    softmax(q k^T / sqrt(key_dim)) v -> 1x1 output conv -> [layer scale] -> + input.
    As the TF Model Garden's MultiHeadSelfAttentionBlock with use_multi_query
    (no biases, no activation). The attention is written with static-shape
    RESHAPE and BATCH_MATMUL so that TFLite's XNNPACK delegate takes it.
    """

    def __init__(
        self,
        heads=4,
        key_dim=64,
        value_dim=64,
        kv_strides=1,
        kv_dw_kernel=3,
        layer_scale=True,
        layer_scale_init=1e-5,
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        padding="same",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for what, value in (("heads", heads), ("key_dim", key_dim), ("value_dim", value_dim), ("kv_strides", kv_strides)):
            if not isinstance(value, int) or value < 1:
                raise ModelError(f"{self.name}: {what} must be a positive integer, got {value!r}")
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        self.kv_strides, self.kv_dw_kernel = kv_strides, kv_dw_kernel
        self.layer_scale, self.layer_scale_init, self.bn_momentum = layer_scale, layer_scale_init, bn_momentum
        self.bn_epsilon, self.padding = bn_epsilon, check_padding(padding)

    def build(self, input_shape):
        self.channels = int(input_shape[-1])
        self.norm = batch_norm("norm", self.bn_momentum, self.bn_epsilon)

        def conv(filters, name):
            return keras.layers.Conv2D(filters, 1, use_bias=False, name=name)

        self.query = conv(self.heads * self.key_dim, "query")
        self.key_dw = self.value_dw = None
        if self.kv_strides > 1:
            conv_options = {"bn_momentum": self.bn_momentum, "bn_epsilon": self.bn_epsilon, "padding": self.padding}
            self.key_dw = DepthwiseBNAct(self.kv_dw_kernel, self.kv_strides, None, **conv_options, name="key_dw")
            self.value_dw = DepthwiseBNAct(self.kv_dw_kernel, self.kv_strides, None, **conv_options, name="value_dw")
        self.key = conv(self.key_dim, "key")
        self.value = conv(self.value_dim, "value")
        self.output_proj = conv(self.channels, "output")
        self.scale = LayerScale(self.layer_scale_init, name="layer_scale") if self.layer_scale else None
        super().build(input_shape)

    @property
    def has_residual(self):
        return True

    def attend(self, query, key, value):
        return multi_query_attention(query, key, value, self.heads, self.key_dim, self.value_dim)

    def branch(self, inputs, training=None):
        x = self.norm(inputs, training=training)
        kv_key = self.key_dw(x, training=training) if self.key_dw is not None else x
        kv_value = self.value_dw(x, training=training) if self.value_dw is not None else x
        out = self.output_proj(self.attend(self.query(x), self.key(kv_key), self.value(kv_value)))
        return self.scale(out) if self.scale is not None else out

    def call(self, inputs, training=None):
        return self.add_residual(inputs, self.branch(inputs, training=training), training)

    def get_config(self):
        return {
            **super().get_config(),
            "heads": self.heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "kv_strides": self.kv_strides,
            "kv_dw_kernel": self.kv_dw_kernel,
            "layer_scale": self.layer_scale,
            "layer_scale_init": self.layer_scale_init,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "padding": self.padding,
        }


def has_attention(model):
    """True when `model` holds a Mobile MQA block (whose int8 export keeps the attention in float32:
    deploy.quantization.convert_int8_float_attention)."""
    return any(isinstance(layer, (MobileMQA, AttentionCore)) for layer in model.submodules)

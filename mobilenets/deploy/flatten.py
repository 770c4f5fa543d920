"""Our models as flat functional graphs of standard Keras layers, for quantize-aware training.

tensorflow-model-optimization (tfmot 0.8) quantizes a functional model layer
by layer and folds Conv2D/DepthwiseConv2D -> BatchNormalization -> ReLU chains
the way TFLite fuses them (`default_8bit_transforms`); it can neither look
inside subclassed layers nor through nested ones (tfmot guide "Quantization
aware training comprehensive guide", https://www.tensorflow.org/model_optimization/guide/quantization/training_comprehensive_guide).
`flatten` rebuilds a model node by node: standard layers are copied as they
are, and each layer of this package becomes the standard layers it computes:

    ConvBNAct, DepthwiseBNAct  Conv2D | DepthwiseConv2D -> BatchNormalization -> ReLU(6) | Activation('hswish')
    LearnedGroupConv           Conv2D with the masked kernel (dense: condense with mobilenets.deploy.convert first)
    SqueezeExcite              GlobalAveragePooling2D(keepdims) -> Conv2D -> ReLU -> Conv2D (bias + 3) -> ReLU(6)
                               -> Rescaling(1/6) -> Multiply: the hard sigmoid relu6(z + 3) / 6
    ChannelShuffle             Reshape -> Permute -> Reshape
    blocks                     their sublayers in call order, Add for the residual
    LayerScale (MobileNetV4)   folded into the projection's BatchNorm (UIB) or the output conv (Mobile MQA)
    MobileMQA                  BatchNorm as a 1x1 DepthwiseConv2D with bias; query / key / value convs;
                               AttentionCore (reshape, matmul, softmax; copied) -> output conv -> Add

Normalize and the h-swish / GELU `Activation` stay (copied):
`mobilenets.deploy.quantization` gives them QuantizeConfigs. Weights are copied, so
the flat model is independent of the original. `tests/test_export.py` checks
flat == original for every registered model.
"""

import tensorflow as tf
import tf_keras as keras

from mobilenets.deploy.activations import TimesSixSqueezeExcite
from mobilenets.models.attention import AttentionCore, MobileMQA
from mobilenets.models.blocks import DepthwiseSeparable, FusedInvertedBottleneck, InvertedResidual, UniversalInvertedBottleneck
from mobilenets.errors import ExportError
from mobilenets.models.layers import (
    Activation,
    ChannelShuffle,
    ConvBNAct,
    DepthwiseBNAct,
    LearnedGroupConv,
    Normalize,
    SqueezeExcite,
)


class _GraphBuilder:
    """Emits layers into the new graph under unique names, copying weights."""

    def __init__(self):
        self.names = set()

    def unique(self, name):
        candidate, index = name, 1
        while candidate in self.names:
            candidate, index = f"{name}_{index}", index + 1
        self.names.add(candidate)
        return candidate

    def apply(self, layer, inputs, weights=None, **kwargs):
        """Calls `layer` (fresh, unbuilt) on `inputs`, then loads `weights` into it."""
        outputs = layer(inputs, **kwargs)
        if weights is not None:
            layer.set_weights(weights)
        return outputs

    def copy(self, layer, inputs, name=None, weights=None, cls=None, **kwargs):
        """A copy of `layer` (same class, or `cls`, and config, own weights) applied to `inputs`."""
        config = {**layer.get_config(), "name": self.unique(name or layer.name)}
        fresh = (cls or type(layer)).from_config(config)
        return self.apply(fresh, inputs, layer.get_weights() if weights is None else weights, **kwargs)

    def activation(self, name, x, layer_name):
        if name is None:
            return x
        if name == "relu6":
            return keras.layers.ReLU(6.0, name=self.unique(layer_name))(x)
        if name == "relu":
            return keras.layers.ReLU(name=self.unique(layer_name))(x)
        return Activation(name, name=self.unique(layer_name))(x)


def _conv_bn_act(graph, layer, x, prefix):
    conv = layer.conv
    if layer.pad_width:  # padding="symmetric" (timm's weights): the pad before a 'valid' strided conv
        x = keras.layers.ZeroPadding2D(layer.pad_width, name=graph.unique(f"{prefix}_pad"))(x)
    if isinstance(conv, LearnedGroupConv):
        dense = keras.layers.Conv2D(conv.filters, 1, use_bias=False, name=graph.unique(f"{prefix}_conv"))
        x = graph.apply(dense, x, [conv.masked_kernel().numpy()])
    elif isinstance(conv, keras.layers.DepthwiseConv2D):
        x = graph.copy(conv, x, f"{prefix}_depthwise")
    else:  # a GroupConv2D as the standard layer of its config
        x = graph.copy(conv, x, f"{prefix}_conv", cls=keras.layers.Conv2D)
    x = graph.copy(layer.bn, x, f"{prefix}_bn")
    return graph.activation(layer.activation, x, f"{prefix}_{layer.activation}")


def _squeeze_excite(graph, layer, x, prefix):
    """The gate relu6(expand(z) + 3) / 6 as Conv2D (bias + 3) -> ReLU(6) -> Rescaling(1 / 6): ops XNNPACK runs in int8."""
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name=graph.unique(f"{prefix}_squeeze"))(x)
    gate = graph.copy(layer.reduce, gate, f"{prefix}_reduce")
    gate = keras.layers.ReLU(name=graph.unique(f"{prefix}_relu"))(gate)
    kernel, bias = layer.expand.get_weights()
    scaled = isinstance(layer, TimesSixSqueezeExcite)  # already relu6(expand + 3) = 6 * hard_sigmoid
    gate = graph.copy(layer.expand, gate, f"{prefix}_expand", weights=[kernel, bias if scaled else bias + 3.0])
    gate = keras.layers.ReLU(6.0, name=graph.unique(f"{prefix}_relu6"))(gate)
    if not scaled:
        gate = keras.layers.Rescaling(1.0 / 6.0, name=graph.unique(f"{prefix}_hard_sigmoid"))(gate)
    return keras.layers.Multiply(name=graph.unique(f"{prefix}_excite"))([x, gate])


def _channel_shuffle(graph, layer, x, prefix):
    height, width, channels = x.shape[1:]
    groups = layer.groups
    x = keras.layers.Reshape((height, width, groups, channels // groups), name=graph.unique(f"{prefix}_split"))(x)
    x = keras.layers.Permute((1, 2, 4, 3), name=graph.unique(f"{prefix}_transpose"))(x)
    return keras.layers.Reshape((height, width, channels), name=graph.unique(f"{prefix}_merge"))(x)


def _learned_group_conv(graph, layer, x, prefix):
    dense = keras.layers.Conv2D(layer.filters, 1, use_bias=False, name=graph.unique(prefix))
    return graph.apply(dense, x, [layer.masked_kernel().numpy()])


def _sublayers(graph, x, prefix, *layers):
    for layer in layers:
        if layer is not None:
            x = _expand(graph, layer, x, f"{prefix}_{layer.name}")
    return x


def _depthwise_separable(graph, layer, x, prefix):
    return _sublayers(graph, x, prefix, layer.depthwise, layer.pointwise)


def _inverted_residual(graph, layer, x, prefix):
    """InvertedResidual / IGCV3Block, and mobilenets.deploy.convert's DeployedInvertedResidual (selection, copies)."""
    y = _sublayers(graph, x, prefix, getattr(layer, "select", None))
    copies = getattr(layer, "input_copies", 1)
    if copies > 1:
        y = keras.layers.Concatenate(name=graph.unique(f"{prefix}_copies"))([y] * copies)
    y = _sublayers(graph, y, prefix, layer.expand, layer.shuffle, layer.depthwise)
    y = _sublayers(graph, y, prefix, layer.squeeze_excite, layer.project)
    if layer.has_residual:
        y = keras.layers.Add(name=graph.unique(f"{prefix}_add"))([x, y])
    return y


def _conv_bn_scaled(graph, layer, x, prefix, scale):
    """A linear ConvBNAct whose output is multiplied per channel by `scale` (layer scale): gamma and beta times it."""
    x = graph.copy(layer.conv, x, f"{prefix}_conv")
    gamma, beta, mean, variance = layer.bn.get_weights()
    return graph.copy(layer.bn, x, f"{prefix}_bn", weights=[gamma * scale, beta * scale, mean, variance])


def _universal_inverted_bottleneck(graph, layer, x, prefix):
    """UIB (MobileNetV4): its convs in call order, the layer scale folded into the projection's BatchNorm."""
    y = _sublayers(graph, x, prefix, layer.start_dw, layer.expand, layer.middle_dw)
    if layer.scale is not None:
        y = _conv_bn_scaled(graph, layer.project, y, f"{prefix}_project", layer.scale.gamma.numpy())
    else:
        y = _sublayers(graph, y, prefix, layer.project)
    if layer.has_residual:
        y = keras.layers.Add(name=graph.unique(f"{prefix}_add"))([x, y])
    return y


def _fused_inverted_bottleneck(graph, layer, x, prefix):
    y = _sublayers(graph, x, prefix, layer.expand, layer.project)
    if layer.has_residual:
        y = keras.layers.Add(name=graph.unique(f"{prefix}_add"))([x, y])
    return y


def _mobile_mqa(graph, layer, x, prefix):
    """Mobile MQA: the input BatchNorm as a per-channel affine 1x1 depthwise conv (exact, and tfmot quantizes it),
    the attention's reshapes/matmuls/softmax in one AttentionCore, the layer scale in the output conv."""
    gamma, beta, mean, variance = layer.norm.get_weights()
    factor = gamma / (variance + layer.norm.epsilon) ** 0.5
    affine = keras.layers.DepthwiseConv2D(1, use_bias=True, name=graph.unique(f"{prefix}_norm"))
    y = graph.apply(affine, x, [factor.reshape(1, 1, -1, 1), beta - mean * factor])
    query = graph.copy(layer.query, y, f"{prefix}_query")
    key = _sublayers(graph, y, prefix, layer.key_dw)
    value = _sublayers(graph, y, prefix, layer.value_dw)
    key = graph.copy(layer.key, key, f"{prefix}_key")
    value = graph.copy(layer.value, value, f"{prefix}_value")
    core = AttentionCore(layer.heads, layer.key_dim, layer.value_dim, name=graph.unique(f"{prefix}_attention"))
    out = core([query, key, value])
    (kernel,) = layer.output_proj.get_weights()
    if layer.scale is not None:
        kernel = kernel * layer.scale.gamma.numpy()
    out = graph.copy(layer.output_proj, out, f"{prefix}_output", weights=[kernel])
    return keras.layers.Add(name=graph.unique(f"{prefix}_add"))([x, out])


def _copy_custom(graph, layer, x, prefix):
    return graph.copy(layer, x, prefix)


def _activation(graph, layer, x, prefix):
    return graph.activation(layer.activation, x, prefix)


# Most derived class first: IGCV3Block and DeployedInvertedResidual are InvertedResiduals.
EXPANDERS = {
    Normalize: _copy_custom,
    Activation: _activation,
    ConvBNAct: _conv_bn_act,
    DepthwiseBNAct: _conv_bn_act,
    SqueezeExcite: _squeeze_excite,
    ChannelShuffle: _channel_shuffle,
    LearnedGroupConv: _learned_group_conv,
    DepthwiseSeparable: _depthwise_separable,
    InvertedResidual: _inverted_residual,
    UniversalInvertedBottleneck: _universal_inverted_bottleneck,
    FusedInvertedBottleneck: _fused_inverted_bottleneck,
    MobileMQA: _mobile_mqa,
}


def _expander(layer):
    for cls in type(layer).__mro__:
        if cls in EXPANDERS:
            return EXPANDERS[cls]
    return None


def is_standard_layer(layer):
    return type(layer).__module__.startswith("tf_keras.")


def _expand(graph, layer, x, prefix):
    """`layer` applied to `x` as standard layers (plus the custom leaves listed in the module docstring)."""
    expander = _expander(layer)
    if expander is not None:
        return expander(graph, layer, x, prefix)
    if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"):
        return _call_functional(graph, layer, x)
    if is_standard_layer(layer):
        return graph.copy(layer, x, prefix)
    raise ExportError(
        f"layer {layer.name} ({type(layer).__name__}) has no flat form of standard Keras layers; "
        "quantize-aware training supports this package's layers and standard ones: export with --quantize int8 instead"
    )


def _call_functional(graph, model, inputs):
    """Replays a functional model's nodes on `inputs`, expanding every layer."""
    tensors = {id(kt): tensor for kt, tensor in zip(model.inputs, tf.nest.flatten(inputs))}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            args, kwargs = tf.nest.map_structure(
                lambda value: tensors.get(id(value), value), (node.call_args, node.call_kwargs)
            )
            kwargs = {key: value for key, value in kwargs.items() if key not in ("training", "mask")}
            if len(args) == 1 and not kwargs:
                outputs = _expand(graph, node.layer, args[0], node.layer.name)
            elif is_standard_layer(node.layer) and _expander(node.layer) is None:
                outputs = graph.copy(node.layer, *args, **kwargs)
            else:
                raise ExportError(
                    f"layer {node.layer.name} ({type(node.layer).__name__}) is called with several inputs; "
                    "it cannot be flattened for quantize-aware training"
                )
            for kt, tensor in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(outputs)):
                tensors[id(kt)] = tensor
    return tf.nest.pack_sequence_as(model._nested_outputs, [tensors[id(kt)] for kt in model.outputs])


def flatten(model):
    """`model` (functional, with nested or custom layers) as a flat functional model of standard layers."""
    if not hasattr(model, "_nodes_by_depth"):
        raise ExportError(
            f"model {model.name} is a subclassed Keras model; rebuild it with build_model or the functional API"
        )
    graph = _GraphBuilder()
    inputs = [
        keras.Input(shape=kt.shape[1:], dtype=kt.dtype, name=graph.unique(kt.name.split(":")[0]))
        for kt in model.inputs
    ]
    outputs = _call_functional(graph, model, inputs if len(inputs) > 1 else inputs[0])
    return keras.Model(inputs, outputs, name=f"{model.name}_flat")


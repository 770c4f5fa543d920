"""Weight folds that take ops XNNPACK runs slowly, or not at all, out of an exported graph; equal outputs.

- IGCV3 (Sun et al. 2018): the channel shuffle between its two group convs
  (two RESHAPEs and a TRANSPOSE over the widest tensor of the block) is folded
  into the convs' weights (`fold_channel_shuffles`).
- MobileNetV3 in int8 (Howard et al. 2019): h-swish becomes two int8 ops instead
  of three, its 1/6 folded into the kernels that read it (`fold_hard_swish_scale`).
"""

import numpy as np
import tf_keras as keras

from mobilenets.deploy.activations import TIMES_SIX
from mobilenets.deploy.convert import DeployedInvertedResidual, permuted_weights, dense_kernel, rebuild_chain
from mobilenets.errors import ModelError
from mobilenets.models.blocks import InvertedResidual
from mobilenets.models.layers import Activation, ConvBNAct


def dense_unshuffled_block(block):
    """(config, weights) of a DeployedInvertedResidual equal to an IGCV3 block with dense 1x1 convs:
    the expansion's block-diagonal kernel writes its channels in the shuffled order, so
    nothing is copied; twice the 1x1 multiply-adds (G = 2), but dense int8 convs run
    2-4x faster than grouped ones in XNNPACK on x86 (see `mobilenets.deploy.tuning`)."""
    source = shuffle_sources(block.shuffle_groups, block.expanded_channels)
    config = block.get_config()
    config.update(shuffle_groups=None, expand_groups=1, project_groups=1, expanded_channels=block.expanded_channels)
    weights = {
        ("expand", "conv"): [dense_kernel(block.expand.conv)[:, source][None, None]],
        ("expand", "bn"): permuted_weights(block.expand.bn, source),
        ("depthwise",): block.depthwise.get_weights(),
        ("project", "conv"): [dense_kernel(block.project.conv)[None, None]],
        ("project", "bn"): block.project.bn.get_weights(),
    }
    return config, weights


def shuffle_free_block(block):
    """(config, weights) of a DeployedInvertedResidual equal to an IGCV3 block, without its channel shuffle.

    IGCV3 (Sun et al. 2018): group conv (G groups) -> shuffle -> depthwise ->
    group conv (G groups). Projection group p reads, from each expansion group
    g, a run of C/G^2 channels. The expansion is rewritten as a group conv
    with G^2 groups, (p, g) reading input part g, over G copies of the input
    concatenated: it writes each projection group's channels next to each
    other, so the shuffle (two reshapes and a transpose over the expanded
    tensor) becomes a copy of the narrow input. The depthwise conv, its
    BatchNorm and the projection's rows follow the new order.
    """
    groups, channels = block.shuffle_groups, block.expanded_channels
    if block.expand is None or block.expand.conv.groups != groups or block.project.conv.groups != groups:
        raise ModelError(f"{block.name}: only IGCV3 blocks (G groups on both 1x1 convs and the shuffle) are unshuffled")
    part, run = channels // groups, channels // groups**2
    shuffled_position = np.argsort(shuffle_sources(groups, channels))
    layout = np.concatenate([g * part + p * run + np.arange(run) for p in range(groups) for g in range(groups)])
    at_shuffled = shuffled_position[layout]  # where each new channel sat after the shuffle
    kernel = block.project.conv.get_weights()[0]  # (1, 1, C/G, out): group p's row j reads shuffled channel p*C/G + j
    project = np.empty_like(kernel)
    outputs = kernel.shape[-1] // groups
    for p in range(groups):
        rows = at_shuffled[p * part : (p + 1) * part] - p * part
        project[..., p * outputs : (p + 1) * outputs] = kernel[:, :, rows, p * outputs : (p + 1) * outputs]
    config = block.get_config()
    config.update(shuffle_groups=None, expand_groups=groups**2, expanded_channels=channels, input_copies=groups)
    weights = {
        ("expand", "conv"): [block.expand.conv.get_weights()[0][..., layout]],
        ("expand", "bn"): permuted_weights(block.expand.bn, layout),
        ("depthwise", "conv"): permuted_weights(block.depthwise.conv, at_shuffled, axis=2),
        ("depthwise", "bn"): permuted_weights(block.depthwise.bn, at_shuffled),
        ("project", "conv"): [project],
        ("project", "bn"): block.project.bn.get_weights(),
    }
    return config, weights


def shuffle_sources(groups, channels):
    """`ChannelShuffle(groups)`'s output channel k is its input channel shuffle_sources(...)[k]."""
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


def fold_channel_shuffles(model, dense=False):
    """`model` with every IGCV3 block's channel shuffle folded into weights; equal outputs.

    dense=False: `shuffle_free_block` (group convs, the input copied G times);
    dense=True: `dense_unshuffled_block` (dense 1x1 convs, no copy).

    A block without expansion (IGCV3's first) shuffles its input: the dense
    conv before it writes its channels in the shuffled order instead.
    """
    layers = model.layers[1:]
    shuffled_next = {
        before.name: block for before, block in zip(layers, layers[1:])
        if isinstance(block, InvertedResidual) and block.shuffle is not None and block.expand is None
        and isinstance(before, ConvBNAct) and before.groups == 1 and not before.condense_factor
    }

    after_dense_conv = {block.name for block in shuffled_next.values()}

    def replace(layer, input_order):
        if layer.name in shuffled_next:
            source = shuffle_sources(shuffled_next[layer.name].shuffle_groups, layer.filters)
            weights = {("conv",): permuted_weights(layer.conv, source, axis=3), ("bn",): permuted_weights(layer.bn, source)}
            return layer.__class__.from_config(layer.get_config()), weights, input_order
        if not (isinstance(layer, InvertedResidual) and layer.shuffle is not None):
            return None
        if layer.expand is None:
            if layer.name not in after_dense_conv:
                raise ModelError(f"{layer.name}: its input shuffle has no dense conv before it to fold into")
            config = {**layer.get_config(), "shuffle_groups": None, "expanded_channels": layer.expanded_channels}
            return DeployedInvertedResidual.from_config(config), {(): layer.get_weights()}, input_order
        config, weights = (dense_unshuffled_block if dense else shuffle_free_block)(layer)
        return DeployedInvertedResidual.from_config(config), weights, input_order

    return rebuild_chain(model, replace)


def _scale_kernel(layer, factor):
    """Multiplies the kernel (first weight) of a conv or dense layer by `factor`, in place."""
    weights = layer.get_weights()
    layer.set_weights([weights[0] * factor, *weights[1:]])


def _applies_hard_swish(layer):
    """True for the layers `fold_hard_swish_scale` switches to 6 * h-swish (their own activation, not a sublayer's)."""
    if isinstance(layer, ConvBNAct):
        return not layer.condense_factor and layer.activation == "hswish"
    return isinstance(layer, Activation) and layer.activation == "hswish"


def _is_trained_block(layer):
    """An inverted residual as the model trains it (a DeployedInvertedResidual is copied as it is)."""
    return isinstance(layer, InvertedResidual) and not isinstance(layer, DeployedInvertedResidual)


def _times_six_copy(layer):
    """`clone_model`'s copy of one top-level layer, each h-swish it applies as 6 * h-swish (`TIMES_SIX`) and
    its squeeze-excite gate as 6 * hard_sigmoid (a DeployedInvertedResidual); weights are set after."""
    config = layer.get_config()
    if _applies_hard_swish(layer):
        return layer.__class__.from_config({**config, "activation": TIMES_SIX})
    if not _is_trained_block(layer):
        return layer.__class__.from_config(config)
    for key in ("activation", "expand_activation"):
        if config[key] == "hswish":
            config[key] = TIMES_SIX
    if layer.squeeze_excite is None:
        return layer.__class__.from_config(config)
    return DeployedInvertedResidual.from_config({**config, "expanded_channels": layer.expanded_channels,
                                                 "times_six_gate": True})


def _output_scale(layer):
    """6 for a layer that applies 6 * h-swish, else 1."""
    return 6.0 if getattr(layer, "activation", None) == TIMES_SIX else 1.0


def _outputs_at_scale_one(model):
    """Names of the layers whose output must keep its value: the model's outputs and, through the layers
    that carry their input's scale to their output (a residual add, global pooling), the layers before."""
    kept, layers = {tensor._keras_history.layer.name for tensor in model.outputs}, model.layers[1:]
    carriers = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Dropout)
    for before, layer in reversed(list(zip(layers, layers[1:]))):
        if layer.name in kept and (getattr(layer, "has_residual", False) or isinstance(layer, carriers)):
            kept.add(before.name)
    return kept


def fold_hard_swish_scale(model):
    """A copy of a MobileNetV3 whose h-swish layers output 6 * h-swish; equal outputs.

    XNNPACK runs no int8 HARD_SWISH, and h-swish written with ops it runs
    takes three (MUL by 1/6, ADD+RELU6, MUL), each a pass over the tensor.
    6 * h-swish(x) = x * relu6(x + 3) takes two; the 1/6 goes into the kernel
    of every conv or dense layer that reads it (through the squeeze-excite's
    average and gate, which commute with a scale). The squeeze-excite gate
    likewise becomes relu6(expand(z) + 3) = 6 * hard_sigmoid, its + 3 in the
    expand bias (one fused CONV_2D+RELU6 instead of a conv, an ADD and a MUL).
    Where a scaled tensor reaches a residual add, the projection's BatchNorm
    scales the other operand alike. For int8 exports: in float32 the fused
    HARD_SWISH is faster. The copy's layers are `mobilenets.deploy.activations`'.
    A layer whose output is a model output (a backbone's feature map) keeps its h-swish.
    """
    kept = _outputs_at_scale_one(model)
    copy = keras.models.clone_model(model, clone_function=lambda layer: (
        layer.__class__.from_config(layer.get_config()) if layer.name in kept and _applies_hard_swish(layer)
        else _times_six_copy(layer)))
    copy.set_weights(model.get_weights())
    scale = 1.0  # the tensor between layers holds scale * its value in `model`
    for original, layer in zip(model.layers[1:], copy.layers[1:]):
        if _is_trained_block(original):
            stream = scale
            if layer.expand is not None:
                _scale_kernel(layer.expand.conv, 1.0 / scale)
                scale = _output_scale(layer.expand)
            _scale_kernel(layer.depthwise.conv, 1.0 / scale)
            scale = _output_scale(layer.depthwise)
            excite = layer.squeeze_excite
            if excite is not None:  # its output: scale * input * gate, and the gate becomes 6 * hard_sigmoid
                _scale_kernel(excite.reduce, 1.0 / scale)
                kernel, bias = excite.expand.get_weights()
                excite.expand.set_weights([kernel, bias + 3.0])
                scale *= 6.0
            _scale_kernel(layer.project.conv, 1.0 / scale)
            scale = stream if layer.has_residual else 1.0
            if scale != 1.0:
                gamma, beta, *statistics = layer.project.bn.get_weights()
                layer.project.bn.set_weights([gamma * scale, beta * scale, *statistics])
        elif isinstance(layer, ConvBNAct) and not layer.condense_factor:
            _scale_kernel(layer.conv, 1.0 / scale)
            scale = _output_scale(layer)
        elif isinstance(layer, keras.layers.Dense):
            _scale_kernel(layer, 1.0 / scale)
            scale = 1.0
        elif isinstance(layer, Activation):
            if scale != 1.0:
                raise ModelError(f"{layer.name}: an activation of a scaled tensor; report this as a bug")
            scale = _output_scale(layer)
        elif scale != 1.0 and not isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.Dropout)):
            raise ModelError(f"model {model.name}: cannot carry the h-swish scale through {layer.name}")
    return copy

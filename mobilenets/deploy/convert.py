"""Learned group convolutions -> standard group convolutions, for deployment.

CondenseNet (Huang et al. 2018, sec. 3.1 and fig. 3) trains a 1x1 learned
group conv (LGC) with G groups as a masked dense conv; after its C - 1
condensation stages every group g reads in/C inputs (`kept_inputs()[g]`), so
at test time the layer becomes an index layer that gathers those inputs
(concatenated per group; one input may feed several groups when G != C) and a
standard group conv with G groups.

The group conv's output k = g * (out/G) + d is the masked layer's channel
o = d * G + g. That permutation commutes with per-channel ops (BatchNorm,
ReLU6, the depthwise conv), so it is folded into their weights and into the
next 1x1 conv's gather: the expansion LGC's permutation disappears; after the
projection LGC (followed by a residual add) one `ChannelGather` restores the
order. BatchNorm is kept as is, so the converted model's logits equal the
masked model's up to float summation order.
"""

import dataclasses

import numpy as np
import tf_keras as keras

from mobilenets.blocks import InvertedResidual
from mobilenets.condense import learned_group_convs
from mobilenets.errors import ModelError
from mobilenets.layers import ChannelGather, LearnedGroupConv, register
from mobilenets.registry import is_learned_group_model, list_models


@register
class CondensedInvertedResidual(InvertedResidual):
    """An inverted residual whose 1x1 convs read gathered channels: the deployed LGC block.

    expand_input_indices / project_input_indices: channels gathered before the
    expansion / projection conv (None: all, in order); output_indices: gathered
    after the projection's BatchNorm, before the residual add. The 1x1 convs
    are standard (group) convs: the model needs no mask at inference.
    """

    def __init__(self, filters, expand_input_indices=None, project_input_indices=None, output_indices=None, **kwargs):
        super().__init__(filters, **kwargs)
        if self.expand_condense_factor or self.project_condense_factor or self.shuffle_groups or self.se_ratio:
            raise ModelError(
                f"{self.name}: a condensed block takes no condense factors, channel shuffle or squeeze-excite"
            )
        self.expand_input_indices = _index_list(expand_input_indices)
        self.project_input_indices = _index_list(project_input_indices)
        self.output_indices = _index_list(output_indices)

    def build(self, input_shape):
        super().build(input_shape)
        self.expand_gather = _gather_layer(self.expand_input_indices, "expand_gather")
        self.project_gather = _gather_layer(self.project_input_indices, "project_gather")
        self.output_gather = _gather_layer(self.output_indices, "output_gather")

    def call(self, inputs, training=None):
        x = inputs
        if self.expand is not None:
            x = self.expand(_apply(self.expand_gather, x), training=training)
        x = self.depthwise(x, training=training)
        x = _apply(self.output_gather, self.project(_apply(self.project_gather, x), training=training))
        return inputs + x if self.has_residual else x

    def get_config(self):
        return {
            **super().get_config(),
            "expand_input_indices": self.expand_input_indices,
            "project_input_indices": self.project_input_indices,
            "output_indices": self.output_indices,
        }


def _index_list(indices):
    return None if indices is None else [int(i) for i in indices]


def _gather_layer(indices, name):
    return None if indices is None else ChannelGather(indices, name=name)


def _apply(layer, x):
    return x if layer is None else layer(x)


@dataclasses.dataclass
class GroupConvForm:
    """The standard group conv equal to a fully condensed LGC.

    input_indices: the masked layer's input channels to gather (G * in/C, per group);
    kernel: (1, 1, in/C, out) for Conv2D(groups=G);
    order: the group conv's output k is the masked layer's output order[k].
    """

    input_indices: np.ndarray
    kernel: np.ndarray
    order: np.ndarray


def _path(lgc):
    """'block_3/expand/conv': where a learned group conv sits in its model."""
    return lgc.kernel.name.rsplit("/", 1)[0]


def group_conv_form(lgc):
    """`GroupConvForm` of a LearnedGroupConv whose C - 1 condensation stages are done."""
    kept = lgc.kept_inputs()
    reads = lgc.in_channels // lgc.condense_factor
    if any(len(inputs) != reads for inputs in kept):
        raise ModelError(
            f"{_path(lgc)}: groups read {sorted({len(inputs) for inputs in kept})} inputs, not in/C = {reads}; "
            "its mask was not made by condense_step, so it has no group-conv form"
        )
    weight = lgc.masked_kernel().numpy()[0, 0]  # (in, out)
    order = np.arange(lgc.filters).reshape(-1, lgc.groups).T.reshape(-1)  # k = g * (out/G) + d -> o = d * G + g
    outputs = order.reshape(lgc.groups, -1)
    kernel = np.concatenate([weight[np.ix_(kept[g], outputs[g])] for g in range(lgc.groups)], axis=1)
    return GroupConvForm(np.concatenate(kept), kernel[None, None], order)


def _is_identity(order):
    return bool(np.array_equal(order, np.arange(len(order))))


def _conv_kernel_and_order(conv, channels):
    """(kernel of the standard conv, its output order, input indices to gather or None) of a ConvBNAct's conv."""
    if isinstance(conv, LearnedGroupConv):
        form = group_conv_form(conv)
        return form.kernel, form.order, form.input_indices
    return conv.get_weights()[0], np.arange(channels), None


@dataclasses.dataclass
class _BlockConversion:
    """A CondensedInvertedResidual's config and the weights of its sublayers (paths -> arrays)."""

    config: dict
    weights: dict

    def assign(self, block):
        for path, arrays in self.weights.items():
            layer = block
            for name in path:
                layer = getattr(layer, name)
            layer.set_weights(arrays)


def _permuted(layer, order, axis=0):
    return [np.take(w, order, axis=axis) for w in layer.get_weights()]


def convert_block(block):
    """The `_BlockConversion` of an InvertedResidual with learned group convs."""
    if block.shuffle is not None or block.squeeze_excite is not None:
        raise ModelError(
            f"{block.name}: converting learned group convs next to a shuffle or squeeze-excite is not supported"
        )
    config = block.get_config()
    config.update(expand_condense_factor=None, project_condense_factor=None)
    weights = {}
    expand_order = np.arange(block.expanded_channels)
    if block.expand is not None:
        kernel, expand_order, gather = _conv_kernel_and_order(block.expand.conv, block.expanded_channels)
        config["expand_input_indices"] = gather
        weights[("expand", "conv")] = [kernel]
        weights[("expand", "bn")] = _permuted(block.expand.bn, expand_order)
    # The depthwise conv and its BatchNorm run in the expansion's output order.
    weights[("depthwise", "conv")] = _permuted(block.depthwise.conv, expand_order, axis=2)
    weights[("depthwise", "bn")] = _permuted(block.depthwise.bn, expand_order)
    position = np.argsort(expand_order)  # where the masked model's channel j sits now
    kernel, project_order, gather = _conv_kernel_and_order(block.project.conv, block.filters)
    if gather is not None:
        config["project_input_indices"] = position[gather]
    elif not _is_identity(position):
        config["project_input_indices"] = position
    weights[("project", "conv")] = [kernel]
    weights[("project", "bn")] = _permuted(block.project.bn, project_order)
    if not _is_identity(project_order):
        config["output_indices"] = np.argsort(project_order)
    return _BlockConversion(config, weights)


def not_convertible(model_name):
    """The ModelError for a model without learned group convs."""
    names = ", ".join(name for name in list_models() if is_learned_group_model(name))
    return ModelError(f"model {model_name} has no learned group convolutions; only {names} models are converted")


def check_condensed(model, condense_remaining=False):
    """Raises ModelError unless every LGC finished its C - 1 condensation stages.

    condense_remaining=True runs the missing stages instead (in place, on
    `model`: it changes the model's outputs, as training would have).
    """
    layers = learned_group_convs(model)
    if not layers:
        raise not_convertible(model.name)
    for layer in layers:
        stages = layer.condense_factor - 1
        if condense_remaining:
            while layer.condense_step():
                pass
        elif int(layer.stage.numpy()) < stages:
            raise ModelError(
                f"model {model.name} is not fully condensed ({_path(layer)}: {int(layer.stage.numpy())} of {stages} "
                "stages); train to the end of the condensation schedule or condense the rest "
                "(condense_remaining=True, evaluate.py --condense-remaining)"
            )


def convert_learned_group_model(model, condense_remaining=False):
    """A standard Keras model equal to a condensed LGC MobileNetV2 (any variant).

    Every InvertedResidual holding a learned group conv becomes a
    `CondensedInvertedResidual` (input gathers + Conv2D(groups=G)); other
    layers are copied. The result has no masks: it saves (.keras, .h5,
    SavedModel) and converts to TFLite like any model, and `flops.count` gives
    the masked model's post-condensation figures. See `check_condensed` for
    `condense_remaining`.
    """
    check_condensed(model, condense_remaining)
    conversions = []

    def clone(layer):
        if isinstance(layer, InvertedResidual) and learned_group_convs(layer):
            conversion = convert_block(layer)
            new = CondensedInvertedResidual.from_config(conversion.config)
            conversions.append((conversion.assign, new))
        else:
            new = layer.__class__.from_config(layer.get_config())
            conversions.append((lambda target, source=layer: target.set_weights(source.get_weights()), new))
        return new

    converted = keras.models.clone_model(model, clone_function=clone)
    for assign, layer in conversions:
        assign(layer)
    leftover = learned_group_convs(converted)
    if leftover:
        raise ModelError(
            f"model {model.name}: {_path(leftover[0])} is a learned group conv outside an inverted residual; "
            "only MobileNetV2-LGC blocks are converted"
        )
    return converted

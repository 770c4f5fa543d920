"""Learned group convolutions -> the deployed graph (Huang et al. 2018, CondenseNet, sec. 3.1).

A 1x1 learned group conv (LGC) with G groups trains as a masked dense conv;
after its C - 1 condensation stages group g reads in/C inputs
(`kept_inputs()[g]`), so it equals a standard group conv over those inputs
(`group_conv_form`; an input may feed several groups when G != C) whose output
k = g * (out/G) + d is the masked layer's channel o = d * G + g.

CondenseNet deploys that with an index layer (a gather) before every group
conv. XNNPACK runs no GATHER: each one splits the delegated graph, which
made such a model 2-3x slower than dense MobileNetV2. Here every gather is
folded into weights instead (design notes, sec. 7): the projection's input
gather becomes the output order of the dense expansion before it (a dense
conv can write any channels, repeated or not; BatchNorm and the depthwise
conv are per channel), and the projection's output interleave stays in the
residual stream for a whole stage and is folded into the next dense conv.
That is one of four exact forms a block can take (`BLOCK_FORMS`); which one
runs fastest is measured (`mobilenets.deploy.tuning`). BatchNorm is kept as
is, so the converted logits equal the masked model's up to float summation
order. IGCV3 and MobileNetV3 folds: `mobilenets.deploy.folding`.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mobilenets.deploy.activations import TimesSixSqueezeExcite
from mobilenets.models.blocks import InvertedResidual
from mobilenets.models.condensation import learned_group_convs
from mobilenets.errors import ModelError
from mobilenets.models.layers import ConvBNAct, LearnedGroupConv, register
from mobilenets.models.registry import is_learned_group_model, list_models


@register
class DeployedInvertedResidual(InvertedResidual):
    """An inverted residual as exported: [input copies | 1x1 selection] -> 1x1 expansion -> depthwise
    -> [squeeze-excite] -> 1x1 projection.

    Its convs are standard Conv2D (dense or grouped: `expand_groups`,
    `project_groups`); no masks, gathers or shuffles. `expanded_channels` is
    the width between expansion and projection (with a grouped projection: the
    channels its groups read, in their order, repeats included).
    `select_channels`: a bias-free 1x1 conv with a 0/1 kernel first, which
    picks the inputs a grouped expansion's groups read from the residual
    stream (a gather that XNNPACK runs). `input_copies`: the expansion reads
    that many copies of the input, concatenated (IGCV3 without its shuffle).
    `times_six_gate`: the squeeze-excite is a `TimesSixSqueezeExcite` (a folded MobileNetV3).
    """

    def __init__(self, filters, expanded_channels, select_channels=None, input_copies=1, times_six_gate=False,
                 **kwargs):
        super().__init__(filters, **kwargs)
        if self.expand_condense_factor or self.project_condense_factor or self.shuffle_groups:
            raise ModelError(f"{self.name}: a deployed block takes no condense factors or channel shuffle")
        self.deployed_width = int(expanded_channels)
        self.select_channels = None if select_channels is None else int(select_channels)
        self.input_copies = int(input_copies)
        self.times_six_gate = bool(times_six_gate)

    def expanded_width(self, in_channels):
        return self.deployed_width

    def expansion_inputs(self):
        return self.select_channels or self.in_channels * self.input_copies

    def make_squeeze_excite(self, squeeze_channels):
        if self.times_six_gate:
            return TimesSixSqueezeExcite(squeeze_channels, name="se")
        return super().make_squeeze_excite(squeeze_channels)

    def build(self, input_shape):
        self.select = None
        if self.select_channels:
            self.select = keras.layers.Conv2D(self.select_channels, 1, use_bias=False, name="select")
        super().build(input_shape)

    def expansion_input(self, inputs):
        x = inputs if self.select is None else self.select(inputs)
        return tf.concat([x] * self.input_copies, axis=-1) if self.input_copies > 1 else x

    def get_config(self):
        return {**super().get_config(), "expanded_channels": self.deployed_width,
                "select_channels": self.select_channels, "input_copies": self.input_copies,
                **({"times_six_gate": True} if self.times_six_gate else {})}  # converted.keras files: as before


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


def dense_kernel(conv):
    """The (in, out) matrix of a 1x1 conv: an LGC's masked kernel, a group conv's block-diagonal one."""
    if isinstance(conv, LearnedGroupConv):
        return conv.masked_kernel().numpy()[0, 0]
    kernel = conv.get_weights()[0][0, 0]  # (in / groups, out)
    groups = getattr(conv, "groups", 1)
    if groups == 1:
        return kernel
    reads, writes = kernel.shape[0], kernel.shape[1] // groups
    dense = np.zeros((reads * groups, kernel.shape[1]), kernel.dtype)
    for g in range(groups):
        dense[g * reads : (g + 1) * reads, g * writes : (g + 1) * writes] = kernel[:, g * writes : (g + 1) * writes]
    return dense


def permuted_weights(layer, order, axis=0):
    """The weights of `layer` with `order` taken along `axis` (its channel axis: 0 for BatchNorm, 2 depthwise)."""
    return [np.take(w, order, axis=axis) for w in layer.get_weights()]


def _assign(layer, weights):
    """Sets the weights of `layer`'s sublayers: {('expand', 'conv'): arrays, ...}."""
    for path, arrays in weights.items():
        target = layer
        for name in path:
            target = getattr(target, name)
        target.set_weights(arrays)


# The exact, gather-free forms of a condensed block (`convert_block`):
#   project_grouped  dense expansion writing the projection groups' inputs in order -> grouped projection
#   expand_grouped   0/1 selection conv -> grouped expansion -> dense projection (masked kernel)
#   dense            dense expansion and projection (masked kernels)
#   dense_pruned     `dense` without the expansion channels no projection group reads (`read_channels`):
#                    each takes its expansion column, BatchNorm, depthwise filter and projection row with it
BLOCK_FORMS = ("project_grouped", "expand_grouped", "dense", "dense_pruned")


@dataclasses.dataclass
class BlockPlan:
    """How one inverted residual is deployed: its form (`BLOCK_FORMS`) and the order of its output:
    the residual stream's channel k holds the masked model's channel output_order[k]."""

    form: str
    output_order: np.ndarray


def form_of(conv):
    """The `GroupConvForm` of an LGC or a standard group conv; None for a dense conv."""
    if isinstance(conv, LearnedGroupConv):
        return group_conv_form(conv)
    groups = getattr(conv, "groups", 1)
    if groups == 1:
        return None
    kernel = conv.get_weights()[0]
    return GroupConvForm(np.arange(kernel.shape[2] * groups), kernel, np.arange(kernel.shape[3]))


def read_channels(block):
    """The expansion channels some group of `block`'s learned projection reads, ascending (all of them when
    the projection is not a learned group conv). The masked projection's rows of the others are zero."""
    if block.expand is None or not isinstance(block.project.conv, LearnedGroupConv):
        return np.arange(block.expanded_channels)
    return np.unique(form_of(block.project.conv).input_indices)


def available_forms(block):
    """The `BLOCK_FORMS` that apply to `block` (a grouped conv needs a learned or standard group conv there;
    dense_pruned, an expansion channel that no projection group reads)."""
    forms = ["dense"]
    if block.expand is not None and form_of(block.project.conv) is not None:
        forms.append("project_grouped")
    if block.expand is not None and form_of(block.expand.conv) is not None:
        forms.append("expand_grouped")
    if len(read_channels(block)) < block.expanded_channels:
        forms.append("dense_pruned")
    return forms


def plan_blocks(model, choose_form):
    """{block name: BlockPlan} for every inverted residual of `model`; choose_form(block) -> form name.

    A residual add needs both operands in one channel order, so a stage (a
    block without residual and the residual blocks after it) keeps one order
    in its stream: the grouped projection's output order k = g * (out/G) + d ->
    o = d * G + g when any block of the stage has that form (all of a stage
    share out and G), else the masked model's order. A stage whose first block
    adds the stem's output (narrow widths: the stem is as wide as block 0)
    keeps the stem's order. The dense convs and the
    selection convs before and after absorb it in their kernels.
    """
    stages, plans, outputs = [], {}, output_layers(model)
    for layer in model.layers:
        if isinstance(layer, InvertedResidual):
            if not layer.has_residual or not stages:
                stages.append([])
            stages[-1].append(layer)
    for stage in stages:
        forms, grouped_orders = {}, []
        for block in stage:
            form = choose_form(block)
            if form not in BLOCK_FORMS:
                raise ModelError(f"unknown block form {form!r}; choose one of {', '.join(BLOCK_FORMS)}")
            forms[block.name] = form if form in available_forms(block) else "dense"
            if forms[block.name] == "project_grouped":
                grouped_orders.append(form_of(block.project.conv).order)
        begins_on_the_stem = stage[0].has_residual  # its first add takes the stem's output, in the stem's order
        returned = any(block.name in outputs for block in stage)  # a backbone's feature map: in the model's order
        keep_order = begins_on_the_stem or returned
        order = grouped_orders[0] if grouped_orders and not keep_order else np.arange(stage[0].filters)
        for block in stage:
            form = forms[block.name]
            if form == "project_grouped" and not np.array_equal(form_of(block.project.conv).order, order):
                form = "dense"
            plans[block.name] = BlockPlan(form, order)
    return plans


def convert_block(block, input_order, plan):
    """(config, weights) of the DeployedInvertedResidual equal to `block` on a stream in `input_order`."""
    if block.shuffle is not None or block.squeeze_excite is not None:
        raise ModelError(
            f"{block.name}: converting learned group convs next to a shuffle or squeeze-excite is not supported"
        )
    out_order = plan.output_order
    if block.has_residual and not np.array_equal(out_order, input_order):
        raise ModelError(f"{block.name}: its residual add would mix two channel orders; report this as a bug")
    config = block.get_config()
    config.update(expand_groups=1, expand_condense_factor=None, project_groups=1, project_condense_factor=None)
    weights = {}
    if plan.form == "project_grouped":
        projection = form_of(block.project.conv)
        layout = projection.input_indices
        weights[("project", "conv")] = [projection.kernel]
        config["project_groups"] = block.project.conv.groups
    elif block.expand is None:
        layout = input_order
    else:
        layout = read_channels(block) if plan.form == "dense_pruned" else np.arange(block.expanded_channels)
    if plan.form == "expand_grouped":
        expansion = form_of(block.expand.conv)
        position = np.argsort(input_order)  # where the masked model's channel c sits in the stream
        picked = position[expansion.input_indices]
        if not _is_identity(picked):
            select = np.zeros((len(input_order), len(picked)), np.float32)
            select[picked, np.arange(len(picked))] = 1.0
            weights[("select",)] = [select[None, None]]
            config["select_channels"] = len(picked)
        layout = expansion.order
        weights[("expand", "conv")] = [expansion.kernel]
        config["expand_groups"] = block.expand.conv.groups
    elif block.expand is not None:
        weights[("expand", "conv")] = [dense_kernel(block.expand.conv)[input_order][:, layout][None, None]]
    if block.expand is not None:
        weights[("expand", "bn")] = permuted_weights(block.expand.bn, layout)
    if plan.form != "project_grouped":
        weights[("project", "conv")] = [dense_kernel(block.project.conv)[layout][:, out_order][None, None]]
    config["expanded_channels"] = len(layout)
    weights[("depthwise", "conv")] = permuted_weights(block.depthwise.conv, layout, axis=2)
    weights[("depthwise", "bn")] = permuted_weights(block.depthwise.bn, layout)
    weights[("project", "bn")] = permuted_weights(block.project.bn, out_order)
    return config, weights


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


def convert_learned_group_model(model, condense_remaining=False, block_form="project_grouped"):
    """The deployed form of a condensed LGC MobileNetV2 (any variant): a standard Keras model, equal to it.

    Every inverted residual becomes a `DeployedInvertedResidual`: a dense
    expansion (the masked kernel; the expansion's sparsity is not used, as a
    sparse expansion would need a gather of the residual stream, which
    XNNPACK does not run), the depthwise conv, and the projection as a group
    conv reading exactly in/C channels per group. The group conv's output order
    is kept in the stage's residual stream and folded into the next dense
    kernels (the next stage's expansion, the head conv), so the graph has no
    gather, no mask and no reshape: XNNPACK runs all of it.

    block_form: one of `BLOCK_FORMS` for every block (where it applies, else
    'dense'), or a function block -> form choosing per block (see
    `mobilenets.deploy.tuning.fastest_forms`). Every form is exact.
    Condensation must be complete (see `check_condensed` for `condense_remaining`).
    """
    check_condensed(model, condense_remaining)
    choose = block_form if callable(block_form) else (lambda block: block_form)
    plans = plan_blocks(model, choose)

    def replace(layer, input_order):
        if layer.name not in plans:
            return None
        config, weights = convert_block(layer, input_order, plans[layer.name])
        return DeployedInvertedResidual.from_config(config), weights, plans[layer.name].output_order

    converted = rebuild_chain(model, replace)
    leftover = learned_group_convs(converted)
    if leftover:
        raise ModelError(
            f"model {model.name}: {_path(leftover[0])} is a learned group conv outside an inverted residual; "
            "only MobileNetV2-LGC blocks are converted"
        )
    return converted


def rebuild_chain(model, replace):
    """A new functional model from `model` (a chain of layers), each layer copied or replaced.

    replace(layer, input_order) -> (new layer, {sublayer path: weights}, output order) or None (copy).
    input_order: the channel order of the layer's input (channel k holds the original channel
    input_order[k]); a non-identity order is folded into the next dense ConvBNAct's kernel.
    The model's outputs may be any layers' (a backbone's feature maps); each keeps its channel order.
    """
    inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
    x, order, assignments, rebuilt, returned = inputs, None, [], {}, output_layers(model)
    for layer in model.layers[1:]:
        if len(layer._inbound_nodes) != 1 or isinstance(layer._inbound_nodes[0].input_tensors, (list, tuple)):
            raise ModelError(f"model {model.name}: layer {layer.name} is not part of a chain; only chains are converted")
        input_order = np.arange(int(x.shape[-1])) if order is None else order
        replaced = replace(layer, input_order)
        if replaced is not None:
            new, weights, order = replaced
        elif not _is_identity(input_order):
            if not (isinstance(layer, ConvBNAct) and layer.groups == 1 and not layer.condense_factor):
                raise ModelError(f"model {model.name}: cannot fold a channel order into {layer.name}; report this as a bug")
            new = layer.__class__.from_config(layer.get_config())
            kernel, *rest = layer.conv.get_weights()
            weights, order = {("conv",): [kernel[:, :, input_order]] + rest, ("bn",): layer.bn.get_weights()}, None
        else:
            new, weights, order = layer.__class__.from_config(layer.get_config()), {(): layer.get_weights()}, None
        x = rebuilt[layer.name] = new(x)
        assignments.append((new, weights))
        if layer.name in returned and not (order is None or _is_identity(order)):
            raise ModelError(f"model {model.name}: output {layer.name} would change its channel order; "
                             "report this as a bug")
    for new, weights in assignments:
        _assign(new, weights)
    outputs = tf.nest.map_structure(lambda tensor: rebuilt[tensor._keras_history.layer.name], model._nested_outputs)
    return keras.Model(inputs, outputs, name=model.name)


def output_layers(model):
    """Names of the layers whose outputs are `model`'s."""
    return {tensor._keras_history.layer.name for tensor in model.outputs}

"""One builder: an architecture table + width multiplier -> a Keras model.

The model takes raw pixels (float, 0..255, NHWC) and returns logits. Its first
layer normalizes, so training, evaluation and the exported `.tflite` all see
the same preprocessing. A model is built in two parts, each layer named as
keras.applications and timm would place it:

    trunk   normalize, stem, block_0 ... block_N-1 (every repeat of every table row),
            head_conv (the 1x1 conv before pooling: V2's 1280, V3's 6x expansion)
    top     global pooling, [head_dense, the hidden layer of V3 / V4], [dropout], logits

Without its top the same trunk is a backbone (`include_top=False`, `features_only=True`):
the same layers under the same names, so weights move between a classifier and its
backbone layer by layer (`mobilenets.models.pretrained.transfer_weights`).
"""

import dataclasses
import math

import tf_keras as keras

from mobilenets.errors import ModelError
from mobilenets.models import tables
from mobilenets.models.attention import MobileMQA
from mobilenets.models.blocks import (
    DepthwiseSeparable,
    FusedInvertedBottleneck,
    IGCV3Block,
    InvertedResidual,
    UniversalInvertedBottleneck,
)
from mobilenets.models.layers import Activation, ConvBNAct, Normalize, check_padding, make_divisible

CONFIGS = ("imagenet", "cifar")  # the table's native resolution; 32x32 with fewer downsamplings (tables.for_cifar)
CIFAR_SIDE = 32
CLASSIFIER = "logits"  # the last layer of every classifier; a model without it is a backbone
# include_top=False pooling, named as keras.applications names it
POOLINGS = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}


def scale_width(channels, width_multiplier, rounding):
    if rounding == "floor":
        return int(channels * width_multiplier)
    if rounding == "floor_divisible":
        return make_divisible(int(channels * width_multiplier))
    return make_divisible(channels * width_multiplier)


def head_width(channels, width_multiplier):
    """Head layers widen with multipliers > 1 but are never thinned (MobileNetV2 sec. 5.1)."""
    return make_divisible(channels * width_multiplier) if width_multiplier > 1.0 else channels


# ---------------------------------------------------------------- the trunk, planned from the table


@dataclasses.dataclass(frozen=True)
class TrunkLayer:
    """One layer of the trunk before it is built.

    stage: the table row it repeats (the head conv: a 1x1 "conv" row of its own);
    channels: its output's; strides: its own; stride: its output's, relative to the image.
    """

    name: str
    stage: tables.Stage
    channels: int
    strides: int
    stride: int
    drop_path_rate: float = 0.0


def trunk(arch, width_multiplier=1.0, drop_path_rate=0.0):
    """The `TrunkLayer`s of `arch` in call order: stem, block_0 ... block_N-1, head conv.

    drop_path_rate: stochastic depth (Huang et al. 2016) by the linear rule over depth of the TF
    Model Garden: block i of N (from 1) drops its residual branch at drop_path_rate * i / N.
    """
    has_stem = arch.stages[0].block == "conv"
    rows = arch.stages[1:] if has_stem else arch.stages
    num_blocks = sum(stage.n for stage in rows)
    layers, stride = [], 1
    if has_stem:
        stem = arch.stages[0]
        stride *= stem.s
        width = scale_width(stem.c, width_multiplier, arch.rounding) if arch.stem_scales else stem.c
        layers.append(TrunkLayer("stem", stem, width, stem.s, stride))
    for stage in rows:
        width = scale_width(stage.c, width_multiplier, arch.rounding)
        for repeat in range(stage.n):
            strides = stage.s if repeat == 0 else 1
            stride *= strides
            index = len(layers) - int(has_stem)
            rate = drop_path_rate * (index + 1) / num_blocks
            layers.append(TrunkLayer(f"block_{index}", stage, width, strides, stride, rate))
    if arch.head_conv or arch.head_conv_expansion:
        if arch.head_conv:
            channels = head_width(arch.head_conv, width_multiplier)
        else:
            channels = make_divisible(layers[-1].channels * arch.head_conv_expansion)
        head = tables.Stage("conv", c=channels, k=1, act=arch.head_act)
        layers.append(TrunkLayer("head_conv", head, channels, 1, stride))
    return layers


class FeatureName(str):
    """A feature map's output name, 'stride_<stride>', that sorts by its stride: Keras flattens a dict of outputs
    in the sorted order of its keys (model.outputs, a rebuilt or converted model), which for plain strings puts
    'stride_16' before 'stride_2'."""

    def _order(self):
        prefix, _, stride = self.rpartition("_")
        return (prefix, int(stride)) if stride.isdigit() else (str(self), 0)

    def __lt__(self, other):
        return self._order() < FeatureName(other)._order()

    def __gt__(self, other):
        return FeatureName(other) < self

    def __le__(self, other):
        return not self > other

    def __ge__(self, other):
        return not self < other


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """One output of a `features_only` backbone: named 'stride_<stride>', the output of trunk layer `layer`."""

    name: str
    stride: int
    channels: int
    layer: str


def feature_maps(arch, width_multiplier=1.0):
    """Every feature map a `features_only` backbone of `arch` can return, shallowest first.

    As timm's feature_info (`_efficientnet_builder.EfficientNetBuilder`: the last block of a
    stage whose next stage downsamples, and of the last stage): the last trunk output at each
    stride. MobileNetV3's head conv (6x its last stage, a stage of its own in timm and in the
    paper's table) is its stride-32 map; MobileNetV2's and IGCV3's 1280-wide head conv, which
    the width multiplier does not thin, is not (timm gives 320 channels there).
    """
    last = {}
    for layer in trunk(arch, width_multiplier):
        if layer.name != "head_conv" or arch.head_conv_expansion:
            last[layer.stride] = layer
    return [FeatureMap(FeatureName(f"stride_{stride}"), stride, layer.channels, layer.name)
            for stride, layer in last.items()]


def selected_features(maps, out_indices, name):
    """The `maps` at `out_indices` (None: all), shallowest first; one-line ModelError for bad indices."""
    if out_indices is None:
        return maps
    valid = range(len(maps))
    indices = list(out_indices) if isinstance(out_indices, (tuple, list)) else None
    if not indices or len(set(indices)) != len(indices) or any(
        isinstance(index, bool) or not isinstance(index, int) or index not in valid for index in indices
    ):
        strides = ", ".join(str(feature.stride) for feature in maps)
        raise ModelError(f"out_indices must be distinct indices in 0..{len(maps) - 1} ({name} has {len(maps)} "
                         f"feature maps, at strides {strides}); got {out_indices!r}")
    return [maps[index] for index in sorted(indices)]


# ---------------------------------------------------------------- blocks: one table, block type -> how it is built


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """What every layer of one model shares. block_options: extra keyword arguments of every
    inverted-residual-family block (group counts, condense factors: the GC / LGC / IGCV3 variants)."""

    arch: tables.Architecture
    bn_momentum: float = 0.99
    block_options: dict = dataclasses.field(default_factory=dict)
    bn_epsilon: float = 1e-3  # keras.applications'; timm's weights (PyTorch's BatchNorm) need 1e-5
    padding: str = "same"  # of strided convs: TF's SAME, or "symmetric" as PyTorch (timm) pads (layers.PADDINGS)

    @property
    def conv_options(self):
        """What every conv-BN layer of the model takes: BatchNorm momentum and epsilon, padding."""
        return {"bn_momentum": self.bn_momentum, "bn_epsilon": self.bn_epsilon, "padding": self.padding}


def _conv(layer, options, input_channels):
    stage = layer.stage
    return ConvBNAct(layer.channels, stage.k, layer.strides, activation=stage.act, **options.conv_options,
                     name=layer.name)


def _depthwise_separable(layer, options, input_channels):
    return DepthwiseSeparable(layer.channels, layer.strides, layer.stage.act, **options.conv_options, name=layer.name)


def _inverted_residual(block_class):
    def make(layer, options, input_channels):
        stage = layer.stage
        return block_class(
            layer.channels,
            expansion=stage.t,
            expand=stage.expand,
            kernel_size=stage.k,
            strides=layer.strides,
            activation=stage.act,
            se_ratio=options.arch.se_ratio if stage.se else None,
            **options.conv_options,
            drop_path_rate=layer.drop_path_rate,
            name=layer.name,
            **options.block_options,
        )

    return make


def _fused_inverted_bottleneck(layer, options, input_channels):
    stage = layer.stage
    return FusedInvertedBottleneck(layer.channels, stage.t, stage.k, layer.strides, stage.act, **options.conv_options,
                                   drop_path_rate=layer.drop_path_rate, name=layer.name)


def _universal_inverted_bottleneck(layer, options, input_channels):
    stage = layer.stage
    return UniversalInvertedBottleneck(
        layer.channels,
        expansion=stage.t,
        start_dw_kernel=stage.start_dw_k,
        middle_dw_kernel=stage.middle_dw_k,
        strides=layer.strides,
        activation=stage.act,
        layer_scale=stage.layer_scale,
        **options.conv_options,
        drop_path_rate=layer.drop_path_rate,
        name=layer.name,
    )


def _mobile_mqa(layer, options, input_channels):
    stage = layer.stage
    if layer.strides != 1 or layer.channels != input_channels:
        raise ModelError(
            f"{options.arch.name}: {layer.name} (mqa) keeps its input's shape: it needs stride 1 and c equal to the "
            f"previous row's width ({input_channels} channels), got s={layer.strides}, c={stage.c} ({layer.channels} "
            f"at this width)"
        )
    return MobileMQA(stage.heads, stage.key_dim, stage.key_dim, kv_strides=stage.kv_stride,
                     layer_scale=stage.layer_scale, **options.conv_options,
                     drop_path_rate=layer.drop_path_rate, name=layer.name)


# tables.Stage.block -> (TrunkLayer, BuildOptions, input channels) -> the Keras layer of one repeat of that row
BLOCKS = {
    "conv": _conv,
    "ds": _depthwise_separable,
    "ir": _inverted_residual(InvertedResidual),
    "igcv3": _inverted_residual(IGCV3Block),
    "fused_ib": _fused_inverted_bottleneck,
    "uib": _universal_inverted_bottleneck,
    "mqa": _mobile_mqa,
}


def make_block(layer, options, input_channels):
    """The Keras layer of `layer` (a `TrunkLayer`) reading `input_channels` channels."""
    if layer.stage.block not in BLOCKS:
        raise ModelError(f"{options.arch.name}: unknown block type {layer.stage.block!r}; choose one of "
                         f"{sorted(BLOCKS)}")
    return BLOCKS[layer.stage.block](layer, options, input_channels)


# ---------------------------------------------------------------- models


def has_classifier(model):
    """False for a backbone (`build(..., include_top=False)` or `features_only=True`)."""
    return any(layer.name == CLASSIFIER for layer in model.layers)


def build_trunk(image, layers, options, normalization):
    """Normalization and then `layers` (`TrunkLayer`s) applied to `image`; {layer name: its output}."""
    x = Normalize.named(normalization, name="normalize")(image)
    outputs = {}
    for layer in layers:
        block = make_block(layer, options, int(x.shape[-1]))
        block.build(x.shape)  # outside Keras' __call__, so a ModelError keeps its one-line message
        x = outputs[layer.name] = block(x)
    return outputs


def classifier_top(x, arch, width_multiplier, num_classes, dropout, bn_momentum, bn_epsilon=1e-3):
    """Global pooling, [the hidden head layer], [dropout] and the classifier on the trunk's output `x`."""
    if arch.head_dense and arch.head_dense_norm:
        # MobileNetV4: the hidden layer is a 1x1 conv + BatchNorm on the pooled features (as the Model
        # Garden builds it); the second pooling only drops the 1x1 spatial axes (a MEAN, not a RESHAPE).
        x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
        x = ConvBNAct(head_width(arch.head_dense, width_multiplier), 1, activation=arch.head_act,
                      bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, name="head_dense")(x)
        x = keras.layers.GlobalAveragePooling2D(name="squeeze")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if arch.head_dense and not arch.head_dense_norm:
        x = keras.layers.Dense(head_width(arch.head_dense, width_multiplier), name="head_dense")(x)
        x = Activation(arch.head_act, name="head_act")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.layers.Dense(num_classes, name=CLASSIFIER)(x)


def build(
    arch,
    num_classes=1000,
    input_shape=(224, 224, 3),
    width_multiplier=1.0,
    dropout=0.0,
    normalization="inception",
    bn_momentum=0.99,
    block_options=None,
    drop_path_rate=0.0,
    name=None,
    include_top=True,
    pooling=None,
    features_only=False,
    out_indices=None,
    bn_epsilon=1e-3,
    padding="same",
):
    """Builds `arch` (a `tables.Architecture`): a classifier, or a backbone without its top.

    block_options, bn_epsilon, padding: see `BuildOptions`; drop_path_rate: see `trunk`.
    include_top=False: the trunk, as keras.applications' include_top=False (the head conv before
        pooling stays; num_classes and dropout do not apply); pooling None (the stride-32 map),
        'avg' or 'max' (global pooling to a vector).
    features_only=True: a dict of feature maps {'stride_2': ..., 'stride_32': ...} (`feature_maps`),
        as timm's features_only; out_indices picks some (None: all), indices into `feature_maps`.
    """
    validate(arch, num_classes, input_shape, width_multiplier, dropout)
    validate_backbone(include_top, pooling, features_only, out_indices)
    if not (isinstance(drop_path_rate, (int, float)) and 0 <= drop_path_rate < 1):
        raise ModelError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
    layers = trunk(arch, width_multiplier, drop_path_rate)
    if features_only:  # the trunk up to the deepest map it returns
        features = selected_features(feature_maps(arch, width_multiplier), out_indices, name or arch.name)
        returned = {feature.layer for feature in features}
        layers = layers[: 1 + max(index for index, layer in enumerate(layers) if layer.name in returned)]
    image = keras.Input(shape=input_shape, name="image")
    options = BuildOptions(arch, bn_momentum, block_options or {}, bn_epsilon, check_padding(padding))
    outputs = build_trunk(image, layers, options, normalization)
    x = outputs[layers[-1].name]
    if features_only:
        x = {feature.name: outputs[feature.layer] for feature in features}
    elif not include_top:
        x = POOLINGS[pooling](name=f"{pooling}_pool")(x) if pooling else x
    else:
        x = classifier_top(x, arch, width_multiplier, num_classes, dropout, bn_momentum, bn_epsilon)
    return keras.Model(image, x, name=name or arch.name)


def validate(arch, num_classes, input_shape, width_multiplier, dropout):
    """Rejects impossible configurations with one line saying what to change."""
    if not (isinstance(width_multiplier, (int, float)) and math.isfinite(width_multiplier) and width_multiplier > 0):
        raise ModelError(f"width_multiplier must be a positive number, got {width_multiplier!r}")
    smallest = min(scale_width(stage.c, width_multiplier, arch.rounding) for stage in arch.stages)
    if smallest < 1:
        minimum = max(1 / stage.c for stage in arch.stages)
        raise ModelError(
            f"{arch.name}: width_multiplier={width_multiplier} gives a layer with 0 channels; use at least {minimum:.4g}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not (0.0 <= dropout < 1.0):
        raise ModelError(f"dropout must be in [0, 1), got {dropout!r}")
    if len(input_shape) != 3 or input_shape[-1] != 3 or any(
        not isinstance(side, int) or side < 1 for side in input_shape[:2]
    ):
        raise ModelError(f"input_shape must be (height, width, 3) with positive sides, got {tuple(input_shape)!r}")


def validate_backbone(include_top, pooling, features_only, out_indices):
    """Rejects backbone options that do not go together, in one line."""
    if pooling is not None and pooling not in POOLINGS:
        raise ModelError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if pooling is not None and (include_top or features_only):
        raise ModelError("pooling applies to include_top=False (a pooled backbone); drop it, or pass include_top=False "
                         "without features_only")
    if out_indices is not None and not features_only:
        raise ModelError("out_indices picks feature maps of features_only=True; pass features_only=True or drop it")


def check_config(config):
    if config not in CONFIGS:
        raise ModelError(f"unknown config {config!r}; choose 'imagenet' (the table's resolution) or 'cifar' (32x32)")


def native_input_shape(arch, config="imagenet"):
    """The input `arch` is built for: its table's resolution for 'imagenet' (224, or MobileNetV4's
    256 / 384), 32x32 for 'cifar'."""
    check_config(config)
    side = CIFAR_SIDE if config == "cifar" else arch.input_size
    return (side, side, 3)


def architecture(base, config="imagenet", expansion=None, minimal=False):
    """The table for a configuration: 'imagenet' or 'cifar' (32x32: stem and the next two downsampling rows at
    stride 1, `tables.for_cifar`)."""
    check_config(config)
    arch = tables.minimalistic(base) if minimal else base
    if expansion is not None:
        arch = tables.with_expansion(arch, expansion)
    return tables.for_cifar(arch) if config == "cifar" else arch

"""One builder: an architecture table + width multiplier -> a Keras model.

The model takes raw pixels (float, 0..255, NHWC) and returns logits. Its first
layer normalizes, so training, evaluation and the exported `.tflite` all see
the same preprocessing.
"""

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
from mobilenets.models.layers import Activation, ConvBNAct, Normalize, make_divisible

BLOCKS = {"ir": InvertedResidual, "igcv3": IGCV3Block}


def scale_width(channels, width_multiplier, rounding):
    if rounding == "floor":
        return int(channels * width_multiplier)
    if rounding == "floor_divisible":
        return make_divisible(int(channels * width_multiplier))
    return make_divisible(channels * width_multiplier)


def head_width(channels, width_multiplier):
    """Head layers widen with multipliers > 1 but are never thinned (MobileNetV2 sec. 5.1)."""
    return make_divisible(channels * width_multiplier) if width_multiplier > 1.0 else channels


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
):
    """Builds `arch` (a `tables.Architecture`).

    block_options: extra keyword arguments for every inverted-residual-family
    block (group counts, condense factors: the GC / LGC variants).
    drop_path_rate: stochastic depth (Huang et al. 2016) by the linear rule over depth of the TF
    Model Garden: block i of N (from 1) drops its residual branch at drop_path_rate * i / N.
    """
    validate(arch, num_classes, input_shape, width_multiplier, dropout)
    if not (isinstance(drop_path_rate, (int, float)) and 0 <= drop_path_rate < 1):
        raise ModelError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
    block_options = block_options or {}
    num_blocks = sum(stage.n for row, stage in enumerate(arch.stages) if not (stage.block == "conv" and row == 0))
    inputs = keras.Input(shape=input_shape, name="image")
    x = Normalize.named(normalization, name="normalize")(inputs)
    block_index = 0
    for row, stage in enumerate(arch.stages):
        width = scale_width(stage.c, width_multiplier, arch.rounding)
        if stage.block == "conv" and row == 0:
            width = width if arch.stem_scales else stage.c
            x = ConvBNAct(width, stage.k, stage.s, activation=stage.act, bn_momentum=bn_momentum, name="stem")(x)
            continue
        for repeat in range(stage.n):
            strides = stage.s if repeat == 0 else 1
            depth_rate = drop_path_rate * (block_index + 1) / num_blocks
            block = make_block(stage, width, strides, arch, bn_momentum, block_options, f"block_{block_index}", x.shape,
                               depth_rate)
            block.build(x.shape)  # outside Keras' __call__, so a ModelError keeps its one-line message
            x = block(x)
            block_index += 1
    if arch.head_conv or arch.head_conv_expansion:
        if arch.head_conv:
            head_channels = head_width(arch.head_conv, width_multiplier)
        else:
            head_channels = make_divisible(x.shape[-1] * arch.head_conv_expansion)
        x = ConvBNAct(head_channels, 1, activation=arch.head_act, bn_momentum=bn_momentum, name="head_conv")(x)
    if arch.head_dense and arch.head_dense_norm:
        # MobileNetV4: the hidden layer is a 1x1 conv + BatchNorm on the pooled features (as the Model
        # Garden builds it); the second pooling only drops the 1x1 spatial axes (a MEAN, not a RESHAPE).
        x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
        x = ConvBNAct(head_width(arch.head_dense, width_multiplier), 1, activation=arch.head_act,
                      bn_momentum=bn_momentum, name="head_dense")(x)
        x = keras.layers.GlobalAveragePooling2D(name="squeeze")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if arch.head_dense and not arch.head_dense_norm:
        x = keras.layers.Dense(head_width(arch.head_dense, width_multiplier), name="head_dense")(x)
        x = Activation(arch.head_act, name="head_act")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or arch.name)


def make_block(stage, width, strides, arch, bn_momentum, block_options, name, input_shape, drop_path_rate=0.0):
    """The layer of one repeat of a table row; residual blocks drop their branch at `drop_path_rate`."""
    if stage.block == "conv":
        return ConvBNAct(width, stage.k, strides, activation=stage.act, bn_momentum=bn_momentum, name=name)
    if stage.block == "ds":
        return DepthwiseSeparable(width, strides, stage.act, bn_momentum, name=name)
    if stage.block == "fused_ib":
        return FusedInvertedBottleneck(width, stage.t, stage.k, strides, stage.act, bn_momentum,
                                       drop_path_rate=drop_path_rate, name=name)
    if stage.block == "uib":
        return UniversalInvertedBottleneck(
            width,
            expansion=stage.t,
            start_dw_kernel=stage.start_dw_k,
            middle_dw_kernel=stage.middle_dw_k,
            strides=strides,
            activation=stage.act,
            layer_scale=stage.layer_scale,
            bn_momentum=bn_momentum,
            drop_path_rate=drop_path_rate,
            name=name,
        )
    if stage.block == "mqa":
        if strides != 1 or width != input_shape[-1]:
            raise ModelError(
                f"{arch.name}: {name} (mqa) keeps its input's shape: it needs stride 1 and c equal to the previous "
                f"row's width ({input_shape[-1]} channels), got s={strides}, c={stage.c} ({width} at this width)"
            )
        return MobileMQA(stage.heads, stage.key_dim, stage.key_dim, kv_strides=stage.kv_stride,
                         layer_scale=stage.layer_scale, bn_momentum=bn_momentum, drop_path_rate=drop_path_rate,
                         name=name)
    if stage.block not in BLOCKS:
        raise ModelError(f"{arch.name}: unknown block type {stage.block!r}; choose one of {sorted(BLOCK_TYPES)}")
    return BLOCKS[stage.block](
        width,
        expansion=stage.t,
        expand=stage.expand,
        kernel_size=stage.k,
        strides=strides,
        activation=stage.act,
        se_ratio=arch.se_ratio if stage.se else None,
        bn_momentum=bn_momentum,
        drop_path_rate=drop_path_rate,
        name=name,
        **block_options,
    )


BLOCK_TYPES = ("conv", "ds", "ir", "igcv3", "fused_ib", "uib", "mqa")


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


def architecture(base, config="imagenet", expansion=None, minimal=False):
    """The table for a configuration: 'imagenet' (224x224) or 'cifar' (32x32)."""
    arch = tables.minimalistic(base) if minimal else base
    if expansion is not None:
        arch = tables.with_expansion(arch, expansion)
    if config == "cifar":
        return tables.for_cifar(arch)
    if config != "imagenet":
        raise ModelError(f"unknown config {config!r}; choose 'imagenet' (224x224) or 'cifar' (32x32)")
    return arch

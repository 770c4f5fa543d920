"""One builder: an architecture table + width multiplier -> a Keras model.

The model takes raw pixels (float, 0..255, NHWC) and returns logits. Its first
layer normalizes, so training, evaluation and the exported `.tflite` all see
the same preprocessing.
"""

import math

import tf_keras as keras

from mobilenets import specs
from mobilenets.blocks import DepthwiseSeparable, IGCV3Block, InvertedResidual
from mobilenets.errors import ModelError
from mobilenets.layers import Activation, ConvBNAct, Normalize, make_divisible

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
    name=None,
):
    """Builds `arch` (a `specs.Architecture`).

    block_options: extra keyword arguments for every inverted-residual-family
    block (group counts, condense factors: the GC / LGC variants).
    """
    validate(arch, num_classes, input_shape, width_multiplier, dropout)
    block_options = block_options or {}
    inputs = keras.Input(shape=input_shape, name="image")
    x = Normalize.named(normalization, name="normalize")(inputs)
    block_index = 0
    for stage in arch.stages:
        width = scale_width(stage.c, width_multiplier, arch.rounding)
        if stage.block == "conv":
            width = width if arch.stem_scales else stage.c
            x = ConvBNAct(width, 3, stage.s, activation=stage.act, bn_momentum=bn_momentum, name="stem")(x)
            continue
        for repeat in range(stage.n):
            strides = stage.s if repeat == 0 else 1
            block_name = f"block_{block_index}"
            if stage.block == "ds":
                block = DepthwiseSeparable(width, strides, stage.act, bn_momentum, name=block_name)
            else:
                block = BLOCKS[stage.block](
                    width,
                    expansion=stage.t,
                    expand=stage.expand,
                    kernel_size=stage.k,
                    strides=strides,
                    activation=stage.act,
                    se_ratio=arch.se_ratio if stage.se else None,
                    bn_momentum=bn_momentum,
                    name=block_name,
                    **block_options,
                )
            block.build(x.shape)  # outside Keras' __call__, so a ModelError keeps its one-line message
            x = block(x)
            block_index += 1
    if arch.head_conv or arch.head_conv_expansion:
        if arch.head_conv:
            head_channels = head_width(arch.head_conv, width_multiplier)
        else:
            head_channels = make_divisible(x.shape[-1] * arch.head_conv_expansion)
        x = ConvBNAct(head_channels, 1, activation=arch.head_act, bn_momentum=bn_momentum, name="head_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if arch.head_dense:
        x = keras.layers.Dense(head_width(arch.head_dense, width_multiplier), name="head_dense")(x)
        x = Activation(arch.head_act, name="head_act")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or arch.name)


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
    arch = specs.minimalistic(base) if minimal else base
    if expansion is not None:
        arch = specs.with_expansion(arch, expansion)
    if config == "cifar":
        return specs.for_cifar(arch)
    if config != "imagenet":
        raise ModelError(f"unknown config {config!r}; choose 'imagenet' (224x224) or 'cifar' (32x32)")
    return arch

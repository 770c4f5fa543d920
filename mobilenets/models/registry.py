"""Every model name goes through here: `list_models()` and `build_model(name, ...)`.

Importing this module does not import TensorFlow (the builder loads on the first
`build_model`), so `hparams` checks model names against `MODELS` cheaply.
"""

import dataclasses
from typing import Callable, Optional

from mobilenets.errors import ModelError
from mobilenets.models import tables


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered name: its table and how its 1x1 convs are grouped.

    block_options maps (groups, condense_factor) to per-block keyword
    arguments: the GC / LGC / IGCV3 variants of the same table.
    """

    arch: tables.Architecture
    description: str
    minimal: bool = False
    block_options: Optional[Callable[[int, int], dict]] = None
    default_groups: int = 4


def _gc(groups, condense_factor):
    return {"expand_groups": groups, "project_groups": groups}


def _lgc(groups, condense_factor):
    return {
        "expand_groups": groups,
        "expand_condense_factor": condense_factor,
        "project_groups": groups,
        "project_condense_factor": condense_factor,
    }


def _lgc_projection(groups, condense_factor):
    return {"project_groups": groups, "project_condense_factor": condense_factor}


def _gc_expansion_lgc_projection(groups, condense_factor):
    return {"expand_groups": groups, "project_groups": groups, "project_condense_factor": condense_factor}


def _igcv3(groups, condense_factor):
    return {"expand_groups": groups, "project_groups": groups, "shuffle_groups": groups}


MODELS = {
    "mobilenetv1": ModelEntry(tables.MOBILENET_V1, "MobileNetV1: depthwise-separable convs"),
    "mobilenetv2": ModelEntry(tables.MOBILENET_V2, "MobileNetV2: inverted residuals, linear bottlenecks"),
    "mobilenetv3_large": ModelEntry(tables.MOBILENET_V3_LARGE, "MobileNetV3-Large: h-swish, squeeze-excite"),
    "mobilenetv3_small": ModelEntry(tables.MOBILENET_V3_SMALL, "MobileNetV3-Small: h-swish, squeeze-excite"),
    "mobilenetv3_large_minimalistic": ModelEntry(
        tables.MOBILENET_V3_LARGE, "MobileNetV3-Large minimalistic: 3x3, ReLU, no SE", minimal=True
    ),
    "mobilenetv3_small_minimalistic": ModelEntry(
        tables.MOBILENET_V3_SMALL, "MobileNetV3-Small minimalistic: 3x3, ReLU, no SE", minimal=True
    ),
    "mobilenetv2_gc": ModelEntry(tables.MOBILENET_V2, "MobileNetV2, group conv (GC) expansion and projection", block_options=_gc),
    "mobilenetv2_lgc": ModelEntry(
        tables.MOBILENET_V2, "MobileNetV2, learned group conv (LGC) expansion and projection", block_options=_lgc
    ),
    "mobilenetv2_lgc_proj": ModelEntry(
        tables.MOBILENET_V2, "MobileNetV2, learned group conv on the projection only", block_options=_lgc_projection
    ),
    "mobilenetv2_gc_lgc": ModelEntry(
        tables.MOBILENET_V2, "MobileNetV2, GC expansion + LGC projection", block_options=_gc_expansion_lgc_projection
    ),
    "igcv3": ModelEntry(tables.IGCV3_D, "IGCV3-D: interleaved low-rank group convs", block_options=_igcv3, default_groups=2),
    "mobilenetv4_conv_small": ModelEntry(tables.MOBILENET_V4_CONV_SMALL, "MobileNetV4-Conv-S: universal inverted bottlenecks"),
    "mobilenetv4_conv_medium": ModelEntry(tables.MOBILENET_V4_CONV_MEDIUM, "MobileNetV4-Conv-M: UIB, fused IB"),
    "mobilenetv4_conv_large": ModelEntry(tables.MOBILENET_V4_CONV_LARGE, "MobileNetV4-Conv-L: UIB, fused IB"),
    "mobilenetv4_hybrid_medium": ModelEntry(tables.MOBILENET_V4_HYBRID_MEDIUM, "MobileNetV4-Hybrid-M: UIB + Mobile MQA"),
    "mobilenetv4_hybrid_large": ModelEntry(tables.MOBILENET_V4_HYBRID_LARGE, "MobileNetV4-Hybrid-L: UIB + Mobile MQA, GELU"),
}

CONFIGS = {"imagenet": (224, 224, 3), "cifar": (32, 32, 3)}


def native_input_shape(name, config="imagenet"):
    """The input a model is built for by default: its table's native resolution for 'imagenet'
    (224, or MobileNetV4's 256 / 384), 32x32 for 'cifar'."""
    if config not in CONFIGS:
        raise ModelError(f"unknown config {config!r}; choose one of: {', '.join(CONFIGS)}")
    if config == "cifar":
        return CONFIGS[config]
    size = get_entry(name).arch.input_size
    return (size, size, 3)


def list_models():
    return sorted(MODELS)


def get_entry(name):
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return MODELS[name]


def is_learned_group_model(name):
    """Whether the model's 1x1 convolutions are learned group convolutions (CondenseNet, Huang et al. 2018)."""
    options = get_entry(name).block_options
    return bool(options and any(key.endswith("condense_factor") for key in options(1, 1)))


LEARNED_GROUP_MODELS = tuple(name for name in MODELS if is_learned_group_model(name))


def build_model(
    name,
    num_classes=1000,
    input_shape=None,
    width_multiplier=1.0,
    dropout=0.0,
    config="imagenet",
    expansion=None,
    groups=None,
    condense_factor=4,
    normalization="inception",
    bn_momentum=0.99,
    weights=None,
    drop_path_rate=0.0,
):
    """Builds a registered model; it takes raw 0..255 pixels and returns logits.

    config: 'imagenet' (default input: the native resolution, 224x224 but for MobileNetV4-M 256
    and -L 384) or 'cifar' (32x32, seed strides).
    expansion: replaces every expansion ratio t != 1 (the seed's 'V2 t=4').
    groups / condense_factor: for the GC, LGC and IGCV3 variants (G1 = G2 for IGCV3).
    weights: None, 'imagenet' or a keras.applications weights file (V1/V2/V3 only).
    drop_path_rate: stochastic depth of the last block, linear over depth (builder.build).
    """
    from mobilenets.models import builder

    entry = get_entry(name)
    if config not in CONFIGS:
        raise ModelError(f"unknown config {config!r}; choose one of: {', '.join(CONFIGS)}")
    input_shape = tuple(input_shape or native_input_shape(name, config))
    if expansion is not None and not (isinstance(expansion, (int, float)) and expansion > 0):
        raise ModelError(f"expansion must be a positive number, got {expansion!r}")
    if expansion is not None and not any(stage.block in ("ir", "igcv3") for stage in entry.arch.stages):
        raise ModelError(f"{name} has no expansion ratio; drop expansion= or pick a MobileNetV2-family model")
    groups = entry.default_groups if groups is None else groups
    if not isinstance(groups, int) or groups < 1 or not isinstance(condense_factor, int) or condense_factor < 1:
        raise ModelError(f"groups and condense_factor must be positive integers, got {groups!r}, {condense_factor!r}")
    arch = builder.architecture(entry.arch, config, expansion, entry.minimal)
    model = builder.build(
        arch,
        num_classes=num_classes,
        input_shape=input_shape,
        width_multiplier=width_multiplier,
        dropout=dropout,
        normalization=normalization,
        bn_momentum=bn_momentum,
        block_options=entry.block_options(groups, condense_factor) if entry.block_options else None,
        drop_path_rate=drop_path_rate,
        name=name,
    )
    if weights is not None:
        from mobilenets.models import pretrained

        pretrained.load_keras_applications_weights(model, name, weights, width_multiplier, input_shape, num_classes)
    return model

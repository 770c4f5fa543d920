"""Every model name with its architecture table: data only, no TensorFlow, so `hparams` checks
model names cheaply. `mobilenets.models.registry` builds them."""

import dataclasses
from typing import Callable, Optional

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
    "igcv3": ModelEntry(tables.IGCV3_D, "IGCV3-D: interleaved low-rank group convs", block_options=_igcv3,
                        default_groups=tables.IGCV3_GROUPS),
    "mobilenetv4_conv_small": ModelEntry(tables.MOBILENET_V4_CONV_SMALL, "MobileNetV4-Conv-S: universal inverted bottlenecks"),
    "mobilenetv4_conv_medium": ModelEntry(tables.MOBILENET_V4_CONV_MEDIUM, "MobileNetV4-Conv-M: UIB, fused IB"),
    "mobilenetv4_conv_large": ModelEntry(tables.MOBILENET_V4_CONV_LARGE, "MobileNetV4-Conv-L: UIB, fused IB"),
    "mobilenetv4_hybrid_medium": ModelEntry(tables.MOBILENET_V4_HYBRID_MEDIUM, "MobileNetV4-Hybrid-M: UIB + Mobile MQA"),
    "mobilenetv4_hybrid_large": ModelEntry(tables.MOBILENET_V4_HYBRID_LARGE, "MobileNetV4-Hybrid-L: UIB + Mobile MQA, GELU"),
}


def is_learned_group_model(name):
    """Whether the model's 1x1 convolutions are learned group convolutions (CondenseNet, Huang et al. 2018)."""
    options = MODELS[name].block_options
    return bool(options and any(key.endswith("condense_factor") for key in options(1, 1)))


LEARNED_GROUP_MODELS = tuple(name for name in MODELS if is_learned_group_model(name))

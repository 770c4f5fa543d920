"""Architecture tables, one row per stage, as the papers write them.

Columns: block type, t (expansion ratio), c (output channels at width 1.0),
n (repeats), s (stride of the first repeat, ImageNet), k (depthwise kernel; the
conv kernel of "conv" and "fused_ib" rows), se (squeeze-excite), act
(activation), expand (has a 1x1 expansion conv); MobileNetV4 adds start_dw_k /
middle_dw_k (the UIB's optional depthwise kernels, 0 = none), layer_scale, and
heads / key_dim / kv_stride (Mobile MQA). `mobilenets.models.builder` turns a table
into layers; nothing else knows the numbers.

CIFAR configurations follow the seeds (the TensorFlow LGC repository's
MobileNetV2: stride-1 stem, stride 1 in the 24- and 32-channel stages): the
stem and the next two downsampling rows run at stride 1, so a 32x32 input
ends at 8x8, where ImageNet's 224x224 ends at 7x7.
"""

import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Stage:
    block: str  # "conv" (stem or plain conv), "ds" (V1 depthwise-separable), "ir" (inverted residual), "igcv3",
    #             "fused_ib" (fused inverted bottleneck), "uib" (universal inverted bottleneck), "mqa" (Mobile MQA)
    c: int
    n: int = 1
    s: int = 1
    t: float = 1.0
    k: int = 3
    se: bool = False
    act: str = "relu6"
    expand: bool = True  # False: no 1x1 expansion conv (each network's first bottleneck)
    start_dw_k: int = 0  # UIB: depthwise kernel before the expansion (0: none)
    middle_dw_k: int = 0  # UIB: depthwise kernel after the expansion (0: none)
    layer_scale: bool = False  # UIB / MQA: learned per-channel scale of the residual branch
    heads: int = 0  # MQA: query heads
    key_dim: int = 0  # MQA: key (= value) dimension per head
    kv_stride: int = 1  # MQA: stride of the keys' and values' depthwise downsampling


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A whole network: stem + stages + head.

    rounding: how widths scale with the multiplier. "floor" is int(c * alpha)
    (MobileNetV1), "floor_divisible" is make_divisible(int(c * alpha))
    (MobileNetV2), "divisible" is make_divisible(c * alpha) (MobileNetV3).
    """

    name: str
    paper: str
    stages: Tuple[Stage, ...]
    rounding: str = "divisible"
    stem_scales: bool = True  # MobileNetV3 keeps its 16-channel stem at every width
    head_conv: Optional[int] = None  # 1x1 conv before pooling (V2: 1280)
    head_conv_expansion: Optional[float] = None  # or as a multiple of the last stage's width (V3: 6)
    head_dense: Optional[int] = None  # hidden fully-connected layer after pooling (V3: 1280 / 1024)
    head_dense_norm: bool = False  # that layer as a 1x1 conv without bias + BatchNorm (V4) instead of with a bias
    head_act: str = "relu6"
    se_ratio: float = 0.25
    cifar_unstrided: int = 3  # downsampling rows (stem first) set to stride 1 for 32x32 inputs
    input_size: int = 224  # native (ImageNet) resolution


# MobileNetV1, Table 1 of Howard et al. 2017 (c: pointwise channels).
MOBILENET_V1 = Architecture(
    name="mobilenetv1",
    paper="Howard et al. 2017, MobileNets: Efficient CNNs for Mobile Vision Applications, table 1",
    rounding="floor",
    stages=(
        Stage("conv", c=32, s=2),
        Stage("ds", c=64, s=1),
        Stage("ds", c=128, n=2, s=2),
        Stage("ds", c=256, n=2, s=2),
        Stage("ds", c=512, n=6, s=2),
        Stage("ds", c=1024, n=2, s=2),
    ),
)

# MobileNetV2, Table 2 of Sandler et al. 2018.
MOBILENET_V2 = Architecture(
    name="mobilenetv2",
    paper="Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks, table 2",
    rounding="floor_divisible",
    head_conv=1280,  # not thinned below 1280 for width multipliers < 1 (paper, sec. 5.1)
    stages=(
        Stage("conv", c=32, s=2),
        Stage("ir", t=1, c=16, n=1, s=1, expand=False),
        Stage("ir", t=6, c=24, n=2, s=2),
        Stage("ir", t=6, c=32, n=3, s=2),
        Stage("ir", t=6, c=64, n=4, s=2),
        Stage("ir", t=6, c=96, n=3, s=1),
        Stage("ir", t=6, c=160, n=3, s=2),
        Stage("ir", t=6, c=320, n=1, s=1),
    ),
)

IGCV3_GROUPS = 2  # G1 = G2: the groups of both 1x1 convs and of the shuffle between them (Sun et al. 2018, sec. 4)

# IGCV3-D, Sun et al. 2018 (table 3): MobileNetV2 with interleaved group convs
# and twice the blocks, except in the first and last stages.
IGCV3_D = Architecture(
    name="igcv3",
    paper="Sun et al. 2018, IGCV3: Interleaved Low-Rank Group Convolutions, sec. 4",
    rounding="floor_divisible",
    head_conv=1280,
    stages=(
        Stage("conv", c=32, s=2),
        Stage("igcv3", t=1, c=16, n=1, s=1, expand=False),
        Stage("igcv3", t=6, c=24, n=4, s=2),
        Stage("igcv3", t=6, c=32, n=6, s=2),
        Stage("igcv3", t=6, c=64, n=8, s=2),
        Stage("igcv3", t=6, c=96, n=6, s=1),
        Stage("igcv3", t=6, c=160, n=6, s=2),
        Stage("igcv3", t=6, c=320, n=1, s=1),
    ),
)

# MobileNetV3-Large, Table 1 of Howard et al. 2019. t is the expansion size
# divided by the input width (exp sizes 16, 64, 72, 72, 120, 120, 240, 200,
# 184, 184, 480, 672, 672, 960, 960).
MOBILENET_V3_LARGE = Architecture(
    name="mobilenetv3_large",
    paper="Howard et al. 2019, Searching for MobileNetV3, table 1",
    stem_scales=False,
    head_conv_expansion=6,
    head_dense=1280,
    head_act="hswish",
    stages=(
        Stage("conv", c=16, s=2, act="hswish"),
        Stage("ir", t=1, c=16, s=1, act="relu", expand=False),
        Stage("ir", t=4, c=24, s=2, act="relu"),
        Stage("ir", t=3, c=24, s=1, act="relu"),
        Stage("ir", t=3, c=40, n=3, s=2, k=5, se=True, act="relu"),
        Stage("ir", t=6, c=80, s=2, act="hswish"),
        Stage("ir", t=2.5, c=80, s=1, act="hswish"),
        Stage("ir", t=2.3, c=80, n=2, s=1, act="hswish"),
        Stage("ir", t=6, c=112, n=2, s=1, se=True, act="hswish"),
        Stage("ir", t=6, c=160, n=3, s=2, k=5, se=True, act="hswish"),
    ),
)

# MobileNetV3-Small, Table 2 of Howard et al. 2019 (exp sizes 16, 72, 88, 96,
# 240, 240, 120, 144, 288, 576, 576).
MOBILENET_V3_SMALL = Architecture(
    name="mobilenetv3_small",
    paper="Howard et al. 2019, Searching for MobileNetV3, table 2",
    stem_scales=False,
    head_conv_expansion=6,
    head_dense=1024,
    head_act="hswish",
    stages=(
        Stage("conv", c=16, s=2, act="hswish"),
        Stage("ir", t=1, c=16, s=2, se=True, act="relu", expand=False),
        Stage("ir", t=72 / 16, c=24, s=2, act="relu"),
        Stage("ir", t=88 / 24, c=24, s=1, act="relu"),
        Stage("ir", t=4, c=40, s=2, k=5, se=True, act="hswish"),
        Stage("ir", t=6, c=40, n=2, s=1, k=5, se=True, act="hswish"),
        Stage("ir", t=3, c=48, n=2, s=1, k=5, se=True, act="hswish"),
        Stage("ir", t=6, c=96, n=3, s=2, k=5, se=True, act="hswish"),
    ),
)


# MobileNetV4, Qin et al. 2024, tables 11-15, as the TF Model Garden writes them
# (official/vision/modeling/backbones/mobilenet.py, MNV4*_BLOCK_SPECS). UIB rows:
# start_dw_k / middle_dw_k 0 / k is an inverted bottleneck (IB), k / 0 ConvNext-like,
# k / k' ExtraDW, 0 / 0 FFN. The last "conv" row (960) thins with the width; the
# 1280-wide hidden layer after pooling (a 1x1 conv with BatchNorm) does not.
def _v4(name, table, stages, input_size, act="relu"):
    return Architecture(
        name=name,
        paper=f"Qin et al. 2024, MobileNetV4: Universal Models for the Mobile Ecosystem, table {table}",
        stages=tuple(dataclasses.replace(stage, act=act) if stage.block != "mqa" else stage for stage in stages),
        head_dense=1280,
        head_dense_norm=True,
        head_act=act,
        input_size=input_size,
    )


MOBILENET_V4_CONV_SMALL = _v4("mobilenetv4_conv_small", 11, input_size=224, stages=(
    Stage("conv", c=32, s=2, k=3),                              # 112px
    Stage("conv", c=32, s=2, k=3),                              # 56px
    Stage("conv", c=32, s=1, k=1),
    Stage("conv", c=96, s=2, k=3),                              # 28px
    Stage("conv", c=64, s=1, k=1),
    Stage("uib", c=96, s=2, t=3, start_dw_k=5, middle_dw_k=5),  # 14px, ExtraDW
    Stage("uib", c=96, n=4, t=2, start_dw_k=0, middle_dw_k=3),  # IB
    Stage("uib", c=96, t=4, start_dw_k=3, middle_dw_k=0),       # ConvNext
    Stage("uib", c=128, s=2, t=6, start_dw_k=3, middle_dw_k=3), # 7px, ExtraDW
    Stage("uib", c=128, t=4, start_dw_k=5, middle_dw_k=5),      # ExtraDW
    Stage("uib", c=128, t=4, start_dw_k=0, middle_dw_k=5),      # IB
    Stage("uib", c=128, t=3, start_dw_k=0, middle_dw_k=5),      # IB
    Stage("uib", c=128, n=2, t=4, start_dw_k=0, middle_dw_k=3), # IB
    Stage("conv", c=960, k=1),
))

MOBILENET_V4_CONV_MEDIUM = _v4("mobilenetv4_conv_medium", 12, input_size=256, stages=(
    Stage("conv", c=32, s=2, k=3),
    Stage("fused_ib", c=48, s=2, k=3, t=4),
    Stage("uib", c=80, s=2, t=4, start_dw_k=3, middle_dw_k=5),
    Stage("uib", c=80, t=2, start_dw_k=3, middle_dw_k=3),
    Stage("uib", c=160, s=2, t=6, start_dw_k=3, middle_dw_k=5),
    Stage("uib", c=160, n=2, t=4, start_dw_k=3, middle_dw_k=3),
    Stage("uib", c=160, t=4, start_dw_k=3, middle_dw_k=5),
    Stage("uib", c=160, t=4, start_dw_k=3, middle_dw_k=3),
    Stage("uib", c=160, t=4, start_dw_k=3, middle_dw_k=0),
    Stage("uib", c=160, t=2, start_dw_k=0, middle_dw_k=0),
    Stage("uib", c=160, t=4, start_dw_k=3, middle_dw_k=0),
    Stage("uib", c=256, s=2, t=6, start_dw_k=5, middle_dw_k=5),
    Stage("uib", c=256, t=4, start_dw_k=5, middle_dw_k=5),
    Stage("uib", c=256, n=2, t=4, start_dw_k=3, middle_dw_k=5),
    Stage("uib", c=256, t=4, start_dw_k=0, middle_dw_k=0),
    Stage("uib", c=256, t=4, start_dw_k=3, middle_dw_k=0),
    Stage("uib", c=256, t=2, start_dw_k=3, middle_dw_k=5),
    Stage("uib", c=256, t=4, start_dw_k=5, middle_dw_k=5),
    Stage("uib", c=256, n=2, t=4, start_dw_k=0, middle_dw_k=0),
    Stage("uib", c=256, t=2, start_dw_k=5, middle_dw_k=0),
    Stage("conv", c=960, k=1),
))

MOBILENET_V4_CONV_LARGE = _v4("mobilenetv4_conv_large", 13, input_size=384, stages=(
    Stage("conv", c=24, s=2, k=3),
    Stage("fused_ib", c=48, s=2, k=3, t=4),
    Stage("uib", c=96, s=2, t=4, start_dw_k=3, middle_dw_k=5),
    Stage("uib", c=96, t=4, start_dw_k=3, middle_dw_k=3),
    Stage("uib", c=192, s=2, t=4, start_dw_k=3, middle_dw_k=5),
    Stage("uib", c=192, n=3, t=4, start_dw_k=3, middle_dw_k=3),
    Stage("uib", c=192, t=4, start_dw_k=3, middle_dw_k=5),
    Stage("uib", c=192, n=5, t=4, start_dw_k=5, middle_dw_k=3),
    Stage("uib", c=192, t=4, start_dw_k=3, middle_dw_k=0),
    Stage("uib", c=512, s=2, t=4, start_dw_k=5, middle_dw_k=5),
    Stage("uib", c=512, n=3, t=4, start_dw_k=5, middle_dw_k=5),
    Stage("uib", c=512, t=4, start_dw_k=5, middle_dw_k=0),
    Stage("uib", c=512, t=4, start_dw_k=5, middle_dw_k=3),
    Stage("uib", c=512, n=2, t=4, start_dw_k=5, middle_dw_k=0),
    Stage("uib", c=512, t=4, start_dw_k=5, middle_dw_k=3),
    Stage("uib", c=512, t=4, start_dw_k=5, middle_dw_k=5),
    Stage("uib", c=512, n=3, t=4, start_dw_k=5, middle_dw_k=0),
    Stage("conv", c=960, k=1),
))


def _hybrid_uib(c, t, start, middle, s=1, n=1):
    return Stage("uib", c=c, n=n, s=s, t=t, start_dw_k=start, middle_dw_k=middle, layer_scale=True)


# Mobile MQA rows: c is the block's input (= output) width; no activation; layer scale.
_MQA_M24 = Stage("mqa", c=160, heads=4, key_dim=64, kv_stride=2, layer_scale=True)  # 16x16 at 256px in
_MQA_M12 = Stage("mqa", c=256, heads=4, key_dim=64, kv_stride=1, layer_scale=True)  # 8x8
_MQA_L24 = Stage("mqa", c=192, heads=8, key_dim=48, kv_stride=2, layer_scale=True)  # 24x24 at 384px in
_MQA_L12 = Stage("mqa", c=512, heads=8, key_dim=64, kv_stride=1, layer_scale=True)  # 12x12

MOBILENET_V4_HYBRID_MEDIUM = _v4("mobilenetv4_hybrid_medium", 14, input_size=256, stages=(
    Stage("conv", c=32, s=2, k=3),
    Stage("fused_ib", c=48, s=2, k=3, t=4),
    _hybrid_uib(80, 4, 3, 5, s=2),
    _hybrid_uib(80, 2, 3, 3),
    _hybrid_uib(160, 6, 3, 5, s=2),
    _hybrid_uib(160, 2, 0, 0),
    _hybrid_uib(160, 4, 3, 3),
    _hybrid_uib(160, 4, 3, 5),
    _MQA_M24,
    _hybrid_uib(160, 4, 3, 3),
    _MQA_M24,
    _hybrid_uib(160, 4, 3, 0),
    _MQA_M24,
    _hybrid_uib(160, 4, 3, 3),
    _MQA_M24,
    _hybrid_uib(160, 4, 3, 0),
    _hybrid_uib(256, 6, 5, 5, s=2),
    _hybrid_uib(256, 4, 5, 5),
    _hybrid_uib(256, 4, 3, 5, n=2),
    _hybrid_uib(256, 2, 0, 0),
    _hybrid_uib(256, 2, 3, 5),
    _hybrid_uib(256, 2, 0, 0),
    _hybrid_uib(256, 4, 0, 0),
    _MQA_M12,
    _hybrid_uib(256, 4, 3, 0),
    _MQA_M12,
    _hybrid_uib(256, 4, 5, 5),
    _MQA_M12,
    _hybrid_uib(256, 4, 5, 0),
    _MQA_M12,
    _hybrid_uib(256, 4, 5, 0),
    Stage("conv", c=960, k=1),
))

MOBILENET_V4_HYBRID_LARGE = _v4("mobilenetv4_hybrid_large", 15, input_size=384, act="gelu", stages=(
    Stage("conv", c=24, s=2, k=3),
    Stage("fused_ib", c=48, s=2, k=3, t=4),
    _hybrid_uib(96, 4, 3, 5, s=2),
    _hybrid_uib(96, 4, 3, 3),
    _hybrid_uib(192, 4, 3, 5, s=2),
    _hybrid_uib(192, 4, 3, 3, n=3),
    _hybrid_uib(192, 4, 3, 5),
    _hybrid_uib(192, 4, 5, 3, n=2),
    _MQA_L24,
    _hybrid_uib(192, 4, 5, 3),
    _MQA_L24,
    _hybrid_uib(192, 4, 5, 3),
    _MQA_L24,
    _hybrid_uib(192, 4, 5, 3),
    _MQA_L24,
    _hybrid_uib(192, 4, 3, 0),
    _hybrid_uib(512, 4, 5, 5, s=2),
    _hybrid_uib(512, 4, 5, 5, n=3),
    _hybrid_uib(512, 4, 5, 0),
    _hybrid_uib(512, 4, 5, 3),
    _hybrid_uib(512, 4, 5, 0, n=2),
    _hybrid_uib(512, 4, 5, 3),
    _hybrid_uib(512, 4, 5, 5),
    _MQA_L12,
    _hybrid_uib(512, 4, 5, 0),
    _MQA_L12,
    _hybrid_uib(512, 4, 5, 0),
    _MQA_L12,
    _hybrid_uib(512, 4, 5, 0),
    _MQA_L12,
    _hybrid_uib(512, 4, 5, 0),
    Stage("conv", c=960, k=1),
))


def minimalistic(arch):
    """MobileNetV3 'minimalistic': 3x3 kernels, ReLU, no squeeze-excite (TF-slim / keras.applications)."""
    stages = tuple(
        dataclasses.replace(stage, k=3, se=False, act="relu") if stage.block != "conv" else dataclasses.replace(stage, act="relu")
        for stage in arch.stages
    )
    return dataclasses.replace(arch, name=arch.name + "_minimalistic", stages=stages, head_act="relu")


def with_expansion(arch, expansion):
    """Sets the expansion ratio of every block that has an expansion conv (the seed's 'MobileNetV2 t=4' rows)."""
    stages = tuple(
        dataclasses.replace(stage, t=expansion) if stage.block in ("ir", "igcv3") and stage.expand else stage
        for stage in arch.stages
    )
    return dataclasses.replace(arch, stages=stages)


def for_cifar(arch):
    """Stride 1 in the stem and the next downsampling rows, for 32x32 inputs."""
    stages, remaining = [], arch.cifar_unstrided
    for stage in arch.stages:
        if stage.s > 1 and remaining > 0:
            stage, remaining = dataclasses.replace(stage, s=1), remaining - 1
        stages.append(stage)
    return dataclasses.replace(arch, stages=tuple(stages))

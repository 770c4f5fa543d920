"""The repeated blocks of the MobileNet family, as Keras layers."""

import tf_keras as keras

from mobilenets.errors import ModelError
from mobilenets.models.tables import IGCV3_GROUPS
from mobilenets.models.layers import (
    ChannelShuffle,
    ConvBNAct,
    DepthwiseBNAct,
    LayerScale,
    ResidualBlock,
    SqueezeExcite,
    check_padding,
    make_divisible,
    register,
)


def check_divisible(layer_name, what, channels, divisor, divisor_name="groups"):
    if divisor and channels % divisor:
        raise ModelError(
            f"{layer_name}: {what} has {channels} channels, not divisible by {divisor_name}={divisor}; "
            f"pick a {divisor_name} value that divides every layer's channels (e.g. 2 or 4) or another width_multiplier"
        )


def conv_options(block):
    """What a block passes to each of its convolutions: BatchNorm momentum and epsilon, and padding."""
    return {"bn_momentum": block.bn_momentum, "bn_epsilon": block.bn_epsilon, "padding": block.padding}


@register
class DepthwiseSeparable(keras.layers.Layer):
    """3x3 depthwise conv then 1x1 pointwise conv, each with BN and ReLU6 (Howard et al. 2017, MobileNetV1, fig. 3)."""

    def __init__(self, filters, strides=1, activation="relu6", bn_momentum=0.99, bn_epsilon=1e-3, padding="same",
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides, self.activation, self.bn_momentum = filters, strides, activation, bn_momentum
        self.bn_epsilon, self.padding = bn_epsilon, check_padding(padding)
        self.depthwise = DepthwiseBNAct(3, strides, activation, **conv_options(self), name="dw")
        self.pointwise = ConvBNAct(filters, 1, activation=activation, **conv_options(self), name="pw")

    def call(self, inputs, training=None):
        return self.pointwise(self.depthwise(inputs, training=training), training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "strides": self.strides,
            "activation": self.activation,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "padding": self.padding,
        }


@register
class InvertedResidual(ResidualBlock):
    """Inverted residual with linear bottleneck (Sandler et al. 2018, MobileNetV2, table 1).

    1x1 expansion -> kxk depthwise -> [squeeze-excite] -> 1x1 linear projection,
    plus the input when shapes match. The same block serves MobileNetV3 (h-swish,
    squeeze-excite; Howard et al. 2019), group-conv and learned-group-conv
    MobileNetV2 (the two 1x1 convs take `*_groups` and `condense_factor`), and
    IGCV3 (Sun et al. 2018: group convs, a channel shuffle after the expansion,
    and a linear expansion).
    """

    def __init__(
        self,
        filters,
        expansion=6.0,
        expand=True,
        kernel_size=3,
        strides=1,
        activation="relu6",
        se_ratio=None,
        expand_groups=1,
        expand_condense_factor=None,
        expand_activation="same",
        shuffle_groups=None,
        project_groups=1,
        project_condense_factor=None,
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        padding="same",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters, self.expansion, self.expand_conv = filters, expansion, expand
        if not expand and expansion != 1:
            raise ModelError(f"{self.name}: a block without expansion conv needs expansion=1, got {expansion}")
        self.kernel_size, self.strides, self.activation = kernel_size, strides, activation
        self.se_ratio = se_ratio
        self.expand_groups, self.expand_condense_factor = expand_groups, expand_condense_factor
        self.expand_activation, self.shuffle_groups = expand_activation, shuffle_groups
        self.project_groups, self.project_condense_factor = project_groups, project_condense_factor
        self.bn_momentum, self.bn_epsilon, self.padding = bn_momentum, bn_epsilon, check_padding(padding)

    def build(self, input_shape):
        # Sublayers are created here, in call order, because the expansion's
        # width depends on the input; weight lists then line up with
        # keras.applications models.
        self.in_channels = int(input_shape[-1])
        self.expanded_channels = self.expanded_width(self.in_channels)
        check_divisible(self.name, "shuffle", self.expanded_channels, self.shuffle_groups)
        if self.expand_conv:
            check_divisible(self.name, "expansion input", self.expansion_inputs(), self.expand_groups)
            check_divisible(self.name, "expansion output", self.expanded_channels, self.expand_groups)
            check_divisible(self.name, "expansion input", self.in_channels, self.expand_condense_factor, "condense_factor")
        check_divisible(self.name, "projection input", self.expanded_channels, self.project_condense_factor, "condense_factor")
        check_divisible(self.name, "projection input", self.expanded_channels, self.project_groups)
        check_divisible(self.name, "projection output", self.filters, self.project_groups)
        self.expand = None
        if self.expand_conv:
            self.expand = ConvBNAct(
                self.expanded_channels,
                1,
                groups=self.expand_groups,
                condense_factor=self.expand_condense_factor,
                activation=self.activation if self.expand_activation == "same" else self.expand_activation,
                **conv_options(self),
                name="expand",
            )
        self.shuffle = ChannelShuffle(self.shuffle_groups, name="shuffle") if self.shuffle_groups else None
        self.depthwise = DepthwiseBNAct(self.kernel_size, self.strides, self.activation, **conv_options(self),
                                        name="dw")
        self.squeeze_excite = None
        if self.se_ratio:
            self.squeeze_excite = self.make_squeeze_excite(make_divisible(self.expanded_channels * self.se_ratio))
        self.project = ConvBNAct(
            self.filters,
            1,
            groups=self.project_groups,
            condense_factor=self.project_condense_factor,
            activation=None,
            **conv_options(self),
            name="project",
        )
        super().build(input_shape)

    def make_squeeze_excite(self, squeeze_channels):
        """The block's squeeze-excite (MobileNetV3, Howard et al. 2019, sec. 5.3)."""
        return SqueezeExcite(squeeze_channels, name="se")

    def expansion_inputs(self):
        """Channels the expansion conv reads: the block's input."""
        return self.in_channels

    def expanded_width(self, in_channels):
        """Channels between the expansion and the projection: t * in, rounded to a multiple of 8."""
        return make_divisible(in_channels * self.expansion)

    def expansion_input(self, inputs):
        """What the expansion conv reads: the block's input."""
        return inputs

    def call(self, inputs, training=None):
        x = self.expansion_input(inputs)
        if self.expand is not None:
            x = self.expand(x, training=training)
        if self.shuffle is not None:
            x = self.shuffle(x)
        x = self.depthwise(x, training=training)
        if self.squeeze_excite is not None:
            x = self.squeeze_excite(x)
        x = self.project(x, training=training)
        return self.add_residual(inputs, x, training)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "expansion": self.expansion,
            "expand": self.expand_conv,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "activation": self.activation,
            "se_ratio": self.se_ratio,
            "expand_groups": self.expand_groups,
            "expand_condense_factor": self.expand_condense_factor,
            "expand_activation": self.expand_activation,
            "shuffle_groups": self.shuffle_groups,
            "project_groups": self.project_groups,
            "project_condense_factor": self.project_condense_factor,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "padding": self.padding,
        }


@register
class IGCV3Block(InvertedResidual):
    """Interleaved low-rank group convolutions (Sun et al. 2018, IGCV3, fig. 2).

    1x1 group conv (G1 groups, linear) -> channel shuffle -> 3x3 depthwise
    (ReLU6) -> 1x1 group conv (G2 groups, linear) -> residual.
    """

    def __init__(self, filters, expansion=6.0, strides=1, groups=IGCV3_GROUPS, **kwargs):
        kwargs.setdefault("expand_groups", groups)
        kwargs.setdefault("project_groups", groups)
        kwargs.setdefault("shuffle_groups", groups)
        kwargs.setdefault("expand_activation", None)
        super().__init__(filters, expansion, strides=strides, **kwargs)


@register
class UniversalInvertedBottleneck(ResidualBlock):
    """Universal inverted bottleneck, UIB (Qin et al. 2024, MobileNetV4, sec. 3.2 and fig. 4).

    [kxk depthwise, BN, linear] -> 1x1 expansion (BN, act) -> [kxk depthwise, BN, act]
    -> 1x1 linear projection (BN) -> [layer scale] -> + input when shapes match.
    A kernel size of 0 leaves that depthwise out, which gives the four instances:

        start_dw_kernel  middle_dw_kernel
        0                k                  inverted bottleneck (IB, MobileNetV2)
        k                0                  ConvNext-like
        k                k'                 ExtraDW
        0                0                  FFN

    The stride goes to the middle depthwise when there is one, else to the
    starting one (the TF Model Garden's `middle_dw_downsample=True`).
    """

    def __init__(
        self,
        filters,
        expansion=4.0,
        start_dw_kernel=0,
        middle_dw_kernel=3,
        strides=1,
        activation="relu",
        layer_scale=False,
        layer_scale_init=1e-5,
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        padding="same",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters, self.expansion, self.strides, self.activation = filters, expansion, strides, activation
        self.start_dw_kernel, self.middle_dw_kernel = start_dw_kernel, middle_dw_kernel
        self.layer_scale, self.layer_scale_init, self.bn_momentum = layer_scale, layer_scale_init, bn_momentum
        self.bn_epsilon, self.padding = bn_epsilon, check_padding(padding)
        for what, size in (("start_dw_kernel", start_dw_kernel), ("middle_dw_kernel", middle_dw_kernel)):
            if not isinstance(size, int) or size < 0:
                raise ModelError(f"{self.name}: {what} must be 0 (no depthwise) or a positive kernel size, got {size!r}")
        if strides > 1 and not (start_dw_kernel or middle_dw_kernel):
            raise ModelError(
                f"{self.name}: a UIB without depthwise convs (FFN) cannot have stride {strides}; "
                "give it a start_dw_kernel or middle_dw_kernel, or stride 1"
            )
        if not (isinstance(expansion, (int, float)) and expansion > 0):
            raise ModelError(f"{self.name}: expansion must be a positive number, got {expansion!r}")

    def build(self, input_shape):
        self.in_channels = int(input_shape[-1])
        self.expanded_channels = make_divisible(self.in_channels * self.expansion)
        start_strides = 1 if self.middle_dw_kernel else self.strides
        self.start_dw = None
        if self.start_dw_kernel:
            self.start_dw = DepthwiseBNAct(self.start_dw_kernel, start_strides, None, **conv_options(self),
                                           name="start_dw")
        self.expand = ConvBNAct(self.expanded_channels, 1, activation=self.activation, **conv_options(self),
                                name="expand")
        self.middle_dw = None
        if self.middle_dw_kernel:
            self.middle_dw = DepthwiseBNAct(self.middle_dw_kernel, self.strides, self.activation, **conv_options(self),
                                            name="middle_dw")
        self.project = ConvBNAct(self.filters, 1, activation=None, **conv_options(self), name="project")
        self.scale = LayerScale(self.layer_scale_init, name="layer_scale") if self.layer_scale else None
        super().build(input_shape)

    def branch(self, inputs, training=None):
        """Everything but the residual add (where a drop-path would wrap it)."""
        x = inputs
        for layer in (self.start_dw, self.expand, self.middle_dw, self.project):
            if layer is not None:
                x = layer(x, training=training)
        return self.scale(x) if self.scale is not None else x

    def call(self, inputs, training=None):
        return self.add_residual(inputs, self.branch(inputs, training=training), training)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "expansion": self.expansion,
            "start_dw_kernel": self.start_dw_kernel,
            "middle_dw_kernel": self.middle_dw_kernel,
            "strides": self.strides,
            "activation": self.activation,
            "layer_scale": self.layer_scale,
            "layer_scale_init": self.layer_scale_init,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "padding": self.padding,
        }


@register
class FusedInvertedBottleneck(ResidualBlock):
    """Fused inverted bottleneck (Tan & Le 2021, EfficientNetV2, fig. 2; MobileNetV4's second layer).

    A full kxk conv expands (BN, act), a 1x1 linear conv projects (BN), plus
    the input when shapes match: the expansion and depthwise of an inverted
    residual fused into one dense conv.
    """

    def __init__(self, filters, expansion=4.0, kernel_size=3, strides=1, activation="relu", bn_momentum=0.99,
                 bn_epsilon=1e-3, padding="same", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.expansion, self.kernel_size = filters, expansion, kernel_size
        self.strides, self.activation, self.bn_momentum = strides, activation, bn_momentum
        self.bn_epsilon, self.padding = bn_epsilon, check_padding(padding)

    def build(self, input_shape):
        self.in_channels = int(input_shape[-1])
        self.expanded_channels = make_divisible(self.in_channels * self.expansion)
        self.expand = ConvBNAct(self.expanded_channels, self.kernel_size, self.strides, activation=self.activation,
                                **conv_options(self), name="expand")
        self.project = ConvBNAct(self.filters, 1, activation=None, **conv_options(self), name="project")
        super().build(input_shape)

    def branch(self, inputs, training=None):
        return self.project(self.expand(inputs, training=training), training=training)

    def call(self, inputs, training=None):
        return self.add_residual(inputs, self.branch(inputs, training=training), training)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "expansion": self.expansion,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "activation": self.activation,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "padding": self.padding,
        }

"""Property-based tests of the model builder (hypothesis).

Any width, resolution, class count and group setting gives either a model
whose parameter count equals the analytic formula below, or a one-line
ModelError: never a crash deep inside TensorFlow.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobilenets import build_model
from mobilenets.models.builder import architecture, head_width, scale_width
from mobilenets.errors import ModelError
from mobilenets.models.layers import make_divisible
from mobilenets.models.registry import get_entry


def analytic_params(name, num_classes, width, config, groups, condense_factor):
    """Trainable parameters from the table alone: conv kernels, BN gamma/beta, dense layers."""
    entry = get_entry(name)
    options = entry.block_options(groups, condense_factor) if entry.block_options else {}
    arch = architecture(entry.arch, config, None, entry.minimal)

    def pointwise(cin, cout, prefix):
        divisor = options.get(f"{prefix}_condense_factor") or options.get(f"{prefix}_groups", 1)
        return cin * cout // divisor + 2 * cout

    total, channels = 0, 3
    for stage in arch.stages:
        out = scale_width(stage.c, width, arch.rounding)
        if stage.block == "conv":
            out = out if arch.stem_scales else stage.c
            total += 9 * channels * out + 2 * out
            channels = out
            continue
        for _ in range(stage.n):
            if stage.block == "ds":
                total += 9 * channels + 2 * channels + channels * out + 2 * out
            else:
                expanded = make_divisible(channels * stage.t)
                if stage.expand:
                    total += pointwise(channels, expanded, "expand")
                total += stage.k**2 * expanded + 2 * expanded
                if stage.se:
                    squeezed = make_divisible(expanded * arch.se_ratio)
                    total += 2 * expanded * squeezed + squeezed + expanded
                total += pointwise(expanded, out, "project")
            channels = out
    if arch.head_conv or arch.head_conv_expansion:
        head = head_width(arch.head_conv, width) if arch.head_conv else make_divisible(channels * arch.head_conv_expansion)
        total += channels * head + 2 * head
        channels = head
    if arch.head_dense:
        dense = head_width(arch.head_dense, width)
        total += channels * dense + dense
        channels = dense
    return total + channels * num_classes + num_classes


def trainable_params(model):
    """Keras' own count, with each learned group conv's kernel counted after condensation."""
    total = 0
    for weight in model.trainable_weights:
        total += int(np.prod(weight.shape))
    for layer in model.submodules:
        if type(layer).__name__ == "LearnedGroupConv":
            total -= layer.kernel.shape.num_elements() - layer.kernel.shape.num_elements() // layer.condense_factor
    return total


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(
        ["mobilenetv1", "mobilenetv2", "mobilenetv3_small", "mobilenetv3_large_minimalistic", "mobilenetv2_gc", "mobilenetv2_lgc", "mobilenetv2_gc_lgc", "igcv3"]
    ),
    width=st.one_of(st.floats(min_value=0.005, max_value=1.6), st.sampled_from([0.0, -0.5, float("nan")])),
    side=st.integers(min_value=8, max_value=72),
    num_classes=st.integers(min_value=-1, max_value=40),
    config=st.sampled_from(["cifar", "imagenet"]),
    groups=st.sampled_from([1, 2, 3, 4, 8, 0]),
    condense_factor=st.sampled_from([1, 2, 4, 3]),
)
def test_builder_gives_the_analytic_model_or_a_clear_error(name, width, side, num_classes, config, groups, condense_factor):
    kwargs = dict(
        num_classes=num_classes, input_shape=(side, side, 3), width_multiplier=width, config=config, groups=groups
    )
    if name in ("mobilenetv2_lgc", "mobilenetv2_gc_lgc"):
        kwargs["condense_factor"] = condense_factor
    try:
        model = build_model(name, **kwargs)
    except ModelError as error:
        message = str(error)
        assert message and "\n" not in message
        return
    expected = analytic_params(name, num_classes, width, config, groups, condense_factor)
    assert trainable_params(model) == expected
    assert model(np.zeros((1, side, side, 3), "float32")).shape == (1, num_classes)

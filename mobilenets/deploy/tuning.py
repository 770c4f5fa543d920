"""The graph an export deploys (`deployed_model`), and which exact form of each LGC block runs fastest.

A condensed LGC block has up to four gather-free forms (`mobilenets.deploy.convert.BLOCK_FORMS`).
Which is fastest depends on the runtime, not on the multiply-adds (ShuffleNetV2,
Ma et al. 2018, G2: group convs cost memory traffic): on this x86 CPU XNNPACK's
dense int8 1x1 convs are 2-4x faster than its int8 group convs of a quarter of
the work, while in float32 group convs win from 28x28 on. `fastest_forms` times
the forms of every distinct block shape with the interpreter an app uses, in the
export's precision, and picks per block.
"""

import os
import tempfile

import numpy as np
import tf_keras as keras

from mobilenets.quiet import held_stderr
from mobilenets.models.condensation import learned_group_convs
from mobilenets.deploy.convert import (
    BLOCK_FORMS,
    available_forms,
    check_condensed,
    convert_learned_group_model,
    form_of,
    read_channels,
)
from mobilenets.deploy.folding import fold_channel_shuffles, fold_hard_swish_scale
from mobilenets.errors import ModelError
from mobilenets.models.costs import count


def _block_model(block, form):
    """One block's convs in `form` (see `convert.BLOCK_FORMS`), in a model of their own, for timing."""
    image = keras.Input(tuple(int(side) for side in block.input_shape[1:]))
    x, width, project_groups = image, block.expanded_channels, 1
    if form == "project_grouped":
        width, project_groups = len(form_of(block.project.conv).input_indices), block.project.conv.groups
    if form == "dense_pruned":
        width = len(read_channels(block))
    if form == "expand_grouped":
        expansion = form_of(block.expand.conv)
        x = keras.layers.Conv2D(len(expansion.input_indices), 1, use_bias=False)(x)
        x = keras.layers.Conv2D(width, 1, groups=block.expand.conv.groups, activation="relu6")(x)
    elif block.expand is not None:
        x = keras.layers.Conv2D(width, 1, activation="relu6")(x)
    x = keras.layers.DepthwiseConv2D(block.kernel_size, block.strides, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(block.filters, 1, groups=project_groups)(x)
    return keras.Model(image, x)


def _tflite(model, quantize):
    """.tflite bytes of a small model in the export's precision (int8: calibrated on random inputs)."""
    import tensorflow as tf

    shape = (1, *model.input_shape[1:])
    # A traced function, not the model itself: 3-5x faster to convert, the same graph.
    call = tf.function(lambda image: model(image, training=False), input_signature=[tf.TensorSpec(shape)],
                       autograph=False)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([call.get_concrete_function()], call)
    if quantize in ("int8", "qat"):
        samples = [np.random.default_rng(seed).normal(size=shape).astype(np.float32) for seed in range(4)]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def _time_forms(models, quantize, threads, runs):
    """Median LiteRT latency of each model, timed interleaved, in the export's precision."""
    from mobilenets.deploy.litert import InvokeTimer, median_latencies_ms
    from mobilenets.deploy.runtime import TFLitePredictor

    timers = []
    with tempfile.TemporaryDirectory() as directory:
        for index, model in enumerate(models):
            path = os.path.join(directory, f"form{index}.tflite")
            with held_stderr():  # the converter's and LiteRT's own lines
                with open(path, "wb") as f:
                    f.write(_tflite(model, quantize))
                timers.append(InvokeTimer(TFLitePredictor(path, threads)))
        return median_latencies_ms(timers, runs, warmup=5, block=10)


def fastest_forms(quantize="none", threads=1, runs=60):
    """A `block_form` choice for `convert_learned_group_model`: per block, the form that times fastest.

    Blocks of the same shape share one measurement (about a second each).
    """
    measured = {}

    def choose(block):
        forms = available_forms(block)
        key = (tuple(block.input_shape[1:]), block.expanded_channels, block.filters, block.kernel_size,
               block.strides, tuple(forms), tuple(getattr(block, part).conv.groups for part in ("expand", "project")
                                                  if getattr(block, part) is not None))
        if key not in measured:
            times = _time_forms([_block_model(block, form) for form in forms], quantize, threads, runs)
            measured[key] = forms[int(np.argmin(times))]
        return measured[key]

    return choose


def deployed_model(model, quantize="none", keep_masks=False, threads=1):
    """(the model to export, a note for the report or None): the deployed form of `model`.

    An LGC model: converted, each block in its fastest exact form (keep_masks=True:
    as it is). An IGCV3 model: its channel shuffles folded away. A MobileNetV3 in
    int8: h-swish in two int8 ops (`fold_hard_swish_scale`). Others: as they are.
    """
    if any(getattr(layer, "shuffle", None) is not None for layer in model.layers):
        if quantize in ("int8", "qat"):  # dense int8 1x1 convs run faster here than grouped ones
            return fold_channel_shuffles(model, dense=True), "channel shuffles folded into dense 1x1 convs (int8)"
        return fold_channel_shuffles(model), "channel shuffles folded into the weights (input copies + group convs)"
    if quantize == "int8" and any(getattr(layer, "activation", None) == "hswish" for layer in model.submodules):
        return fold_hard_swish_scale(model), "h-swish as x * relu6(x + 3), its 1/6 folded into the next kernels"
    if keep_masks or not learned_group_convs(model):
        note = "masked learned group convs (--keep-masks)" if keep_masks and learned_group_convs(model) else None
        return model, note
    try:
        check_condensed(model)
    except ModelError as error:
        raise ModelError(f"{error}; or export it masked, as it trains, with --keep-masks") from None
    forms = {}
    choose = fastest_forms(quantize, threads)

    def remember(block):
        forms[block.name] = choose(block)
        return forms[block.name]

    converted = convert_learned_group_model(model, block_form=remember)
    tally = ", ".join(f"{form} x{list(forms.values()).count(form)}" for form in BLOCK_FORMS if form in forms.values())
    note = (f"converted learned group convs, the fastest exact form per block as timed in LiteRT ({tally}); "
            f"{count(converted).madds / 1e6:.1f}M multiply-adds deployed, {count(model).madds / 1e6:.1f}M after "
            "condensation; no gathers")
    return converted, note


def lgc_costs(model):
    """{'condensed': Cost, 'deployed': Cost} of a condensed LGC model; deployed: its converted form with
    every projection grouped (the expansions run dense, see `convert_learned_group_model`)."""
    return {"condensed": count(model), "deployed": count(convert_learned_group_model(model))}


"""Loading keras.applications MobileNet V1/V2/V3 weights into our models (starting a training from a run of
ours is mobilenets.training.starting_weights).

Our layers hold the same convolutions, BatchNorms and dense layers in the same
order as keras.applications builds them, so weights transfer one leaf layer at
a time (1x1 conv classifiers and dense layers differ only in kernel rank).
A learned group convolution is a dense 1x1 kernel times a 0/1 mask, so the LGC
MobileNetV2s take MobileNetV2's kernels with every mask still open
(CondenseNet, Huang et al. 2018, trains from dense kernels the same way).

A `.h5` file is checked against the model before loading, from the weight shapes it
stores: a keras.applications `_no_top` file (no classifier) is what fine-tuning to new
classes needs and loads silently there; a file of another width names the width it holds
(and the flag that fits it) instead of Keras' "Shape mismatch".
"""

import re

import numpy as np
import tf_keras as keras

from mobilenets.errors import CheckpointError, first_line
from mobilenets.models.builder import has_classifier
from mobilenets.models.layers import LearnedGroupConv, leaf_layers

# name -> (keras.applications constructor, extra kwargs)
KERAS_APPLICATIONS = {
    "mobilenetv1": (keras.applications.MobileNet, {}),
    "mobilenetv2": (keras.applications.MobileNetV2, {}),
    "mobilenetv3_large": (keras.applications.MobileNetV3Large, {}),
    "mobilenetv3_small": (keras.applications.MobileNetV3Small, {}),
    "mobilenetv3_large_minimalistic": (keras.applications.MobileNetV3Large, {"minimalistic": True}),
    "mobilenetv3_small_minimalistic": (keras.applications.MobileNetV3Small, {"minimalistic": True}),
}
# Models whose weight layers are a keras.applications model's, some 1x1 kernels masked (LGC).
PRETRAINED_TWIN = {"mobilenetv2_lgc": "mobilenetv2", "mobilenetv2_lgc_proj": "mobilenetv2"}
# The widths (alpha) keras.applications builds each model at: where a file's width is looked for.
KNOWN_WIDTHS = {
    "mobilenetv1": (0.25, 0.5, 0.75, 1.0),
    "mobilenetv2": (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
    "mobilenetv3_large": (0.75, 1.0),
    "mobilenetv3_small": (0.75, 1.0),
    "mobilenetv3_large_minimalistic": (0.75, 1.0),
    "mobilenetv3_small_minimalistic": (0.75, 1.0),
}
CLASSIFIER_LAYERS = ("conv_preds", "predictions", "Logits")  # keras.applications' (V1, V2, V3): a file with top


def keras_application(name, width_multiplier=1.0, input_shape=(224, 224, 3), num_classes=1000, weights=None,
                      include_top=True):
    """The keras.applications twin of one of our models (logits out; include_top=False: without
    what a `_no_top` file leaves out, the classifier and, for V3, the head conv before it)."""
    if PRETRAINED_TWIN.get(name, name) not in KERAS_APPLICATIONS:
        raise CheckpointError(
            f"keras.applications has no weights for {name!r}; pretrained weights exist for: "
            f"{', '.join([*KERAS_APPLICATIONS, *PRETRAINED_TWIN])}"
        )
    constructor, extra = KERAS_APPLICATIONS[PRETRAINED_TWIN.get(name, name)]
    return constructor(
        input_shape=tuple(input_shape),
        alpha=width_multiplier,
        weights=weights,
        include_top=include_top,
        classes=num_classes,
        classifier_activation=None,
        **extra,
    )


def weight_layers(model):
    return [layer for layer in leaf_layers(model) if layer.weights]


def weight_shapes(model):
    """[[shape of each weight] of each layer with weights], in the order a .h5 file stores them."""
    return [[tuple(w.shape) for w in layer.weights] for layer in weight_layers(model)]


def transfer_weights(source, target, include_classifier=True, source_has_top=True):
    """Copies every weight of `source` into `target`, layer by layer in call order.

    source_has_top=False: `source` is a no-top model (a backbone); the layers of `target` after its
    own (classifier, V3's head conv) keep their initialization. A backbone `target` (builder.has_classifier)
    takes the source's first layers, as far as it goes.
    """
    sources, targets = weight_layers(source), weight_layers(target)
    if not has_classifier(target):
        sources = sources[:len(targets)]
    elif not source_has_top:
        targets = targets[:len(sources)]
    elif not include_classifier:
        sources, targets = sources[:-1], targets[:-1]
    if len(sources) != len(targets):
        raise CheckpointError(
            f"{source.name} has {len(sources)} weight layers but {target.name} has {len(targets)}; "
            "the architectures differ (check the model name and width_multiplier)"
        )
    for src, dst in zip(sources, targets):
        values = src.get_weights()
        destinations = dst.weights
        if _is_masked(dst) and not _is_masked(src):  # a dense kernel into a learned group conv: masks stay open
            destinations = [dst.kernel]
        shapes = [tuple(w.shape) for w in destinations]
        if len(values) != len(shapes) or any(v.size != np.prod(s) for v, s in zip(values, shapes)):
            raise CheckpointError(
                f"cannot load weights of layer {src.name} {[v.shape for v in values]} into {dst.name} {shapes}; "
                "the architectures differ (check the model name and width_multiplier)"
            )
        for variable, value, shape in zip(destinations, values, shapes):
            variable.assign(value.reshape(shape))


def _is_masked(layer):
    return isinstance(layer, LearnedGroupConv)


def load_keras_applications_weights(model, name, weights, width_multiplier, input_shape, num_classes):
    """Loads 'imagenet' (downloaded by Keras) or a keras.applications weights file into `model`.

    With num_classes != 1000 the classifier keeps its fresh initialization, and a `_no_top` file
    (no classifier) is enough.
    """
    side = input_shape[0]
    shape = (side, side, 3) if side == input_shape[1] else input_shape
    take_classifier = num_classes == 1000
    if weights == "imagenet":
        transfer_weights(_imagenet_reference(name, width_multiplier), model, take_classifier)
        return
    stored = stored_weight_shapes(weights)
    has_top = stored[-1][0] in CLASSIFIER_LAYERS
    reference = keras_application(name, width_multiplier, shape, include_top=has_top)
    if weight_shapes(reference) != [shapes for _, shapes in stored]:
        raise CheckpointError(_mismatch(weights, stored, name, width_multiplier, reference, take_classifier))
    if take_classifier and not has_top:
        raise CheckpointError(f"{weights} is a no-top {_twin(name)} file (no classifier): a 1000-class model "
                                  f"takes its classifier from the file; pass the file without _no_top in its name, "
                                  f"or fine-tune to your own classes (they get a new classifier)")
    try:
        reference.load_weights(weights)
    except (ValueError, OSError) as error:
        raise CheckpointError(f"cannot read the weights in {weights} ({first_line(error, 120)}); it is truncated or "
                              f"corrupt: download it again") from None
    transfer_weights(reference, model, take_classifier, source_has_top=has_top)


def _twin(name):
    return PRETRAINED_TWIN.get(name, name)


def _imagenet_reference(name, width_multiplier):
    """The keras.applications model with its ImageNet weights, which Keras downloads (once). Built at
    224x224, the only size Keras gives them with the classifier at; the weights fit any input size."""
    try:
        return keras_application(name, width_multiplier, (224, 224, 3), 1000, "imagenet")
    except CheckpointError:  # ours (a model without a keras.applications twin), not a failed download: as it is
        raise
    except ValueError as error:  # e.g. a width keras.applications publishes no weights for
        raise CheckpointError(f"no keras.applications ImageNet weights for {name} at width {width_multiplier:g}: "
                              f"{first_line(error, 160)}") from None
    except Exception as error:  # keras' get_file raises a bare Exception("URL fetch failure on URL: ...")
        url = re.search(r"https?://\S+?\.h5", str(error))
        reason = first_line(error).split(" -- ", 1)[-1][:120]  # "URL fetch failure on URL: None -- <reason>"
        where = url.group(0) if url else "keras.applications' storage"
        raise CheckpointError(f"could not download the ImageNet weights of {name} (width {width_multiplier:g}) from "
                              f"{where} ({reason}); download that file on a machine with "
                              f"network and pass --weights PATH.h5") from None


def stored_weight_shapes(path):
    """[(layer name, [weight shapes])] of the layers with weights of a Keras .h5 weights (or model) file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            layers = []
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else layer
                names = group[layer].attrs["weight_names"]
                if len(names):
                    layers.append((layer, [tuple(group[layer][n].shape) for n in names]))
    except (OSError, KeyError) as error:
        layers, reason = [], first_line(error, 120)
    else:
        reason = "it holds no weights"
    if not layers:
        raise CheckpointError(f"{path} is not a Keras .h5 weights file ({reason}); pass a keras.applications .h5 "
                              f"file, a run directory or 'imagenet'")
    return layers


def _mismatch(weights, stored, name, width_multiplier, reference, take_classifier):
    """The one line saying what the file `weights` (its `stored` shapes) holds when it does not fit
    the model, whose keras.applications twin is `reference`: the width read from its weight shapes
    and the flag that fits, or that it is not this model's."""
    twin, has_top = _twin(name), stored[-1][0] in CLASSIFIER_LAYERS
    width = _stored_width(stored, name, width_multiplier, reference)
    if width is None:
        return (f"{weights} does not hold keras.applications {twin} weights at any width ({len(stored)} weight "
                f"layers, the first {stored[0][0]!r}): pass a {twin} .h5 file, or --model the model it was saved from")
    top = "" if has_top else " without the classifier (a _no_top file)"
    needs_top = " and the file without _no_top in its name" if take_classifier and not has_top else ""
    return (f"{weights} holds {twin} weights of width {width:g}{top}, read from its weight shapes; this model has "
            f"width {width_multiplier:g}: add --width {width:g}{needs_top}")


def _stored_width(stored, name, width_multiplier, reference):
    """The keras.applications width whose weight shapes are `stored`, tried nearest first to the width
    its conv kernels' channels suggest against `reference` (the model at `width_multiplier`); None if none is."""
    shapes, has_top = [s for _, s in stored], stored[-1][0] in CLASSIFIER_LAYERS
    channels = [(a[0][-1], b[0][-1]) for a, b in zip(shapes, weight_shapes(reference)) if len(a[0]) == 4]
    estimate = width_multiplier * float(np.median([got / want for got, want in channels])) if channels else 1.0
    for width in sorted(set(KNOWN_WIDTHS[_twin(name)]) - {width_multiplier}, key=lambda w: abs(w - estimate)):
        if weight_shapes(keras_application(name, width, reference.input_shape[1:], include_top=has_top)) == shapes:
            return width
    return None

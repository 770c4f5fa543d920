"""Loading keras.applications MobileNet V1/V2/V3 weights, or a run of ours, into our models.

Our layers hold the same convolutions, BatchNorms and dense layers in the same
order as keras.applications builds them, so weights transfer one leaf layer at
a time (1x1 conv classifiers and dense layers differ only in kernel rank).
A learned group convolution is a dense 1x1 kernel times a 0/1 mask, so the LGC
MobileNetV2s take MobileNetV2's kernels with every mask still open
(CondenseNet, Huang et al. 2018, trains from dense kernels the same way).
"""

import os

import numpy as np
import tf_keras as keras

from mobilenets.errors import CheckpointError
from mobilenets.flops import leaf_layers
from mobilenets.layers import LearnedGroupConv
from mobilenets.runs import MODEL_SPEC, load_model_spec, load_run

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


def keras_application(name, width_multiplier=1.0, input_shape=(224, 224, 3), num_classes=1000, weights=None):
    """The keras.applications twin of one of our models (logits out)."""
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
        classes=num_classes,
        classifier_activation=None,
        **extra,
    )


def weight_layers(model):
    return [layer for layer in leaf_layers(model) if layer.weights]


def transfer_weights(source, target, include_classifier=True):
    """Copies every weight of `source` into `target`, layer by layer in call order."""
    sources, targets = weight_layers(source), weight_layers(target)
    if not include_classifier:
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

    With num_classes != 1000 the classifier keeps its fresh initialization.
    """
    side = input_shape[0]
    try:
        reference = keras_application(
            name, width_multiplier, (side, side, 3) if side == input_shape[1] else input_shape, 1000, weights
        )
    except CheckpointError:
        raise
    except (ValueError, OSError, IOError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"could not load keras.applications weights {weights!r} for {name} (width {width_multiplier}): {first_line}; "
            "without internet, download the .h5 file elsewhere and pass its path as weights="
        ) from None
    transfer_weights(reference, model, include_classifier=num_classes == 1000)


# build_model arguments a run's weights depend on; --set model.KEY to match the run's model.json.
RUN_SPEC_KEYS = ("name", "width_multiplier", "config", "expansion", "groups", "condense_factor", "normalization")


def load_pretrained(model, name, weights, width_multiplier, input_shape, num_classes, build_kwargs=None):
    """Loads `weights` into `model` (one of ours, built for `num_classes`): 'imagenet' or a
    keras.applications .h5 file (see load_keras_applications_weights), or a run directory of ours
    (its best, else last, checkpoint; same architecture and width, any classes). A run's classifier
    is never taken: fine-tuning gives the new classes a new one. `build_kwargs`: the model's
    build_model arguments, checked against the run's (RUN_SPEC_KEYS: a different input
    normalization would load silently and compute something else). Returns a one-line description."""
    if os.path.isdir(weights):
        if not os.path.isfile(os.path.join(weights, MODEL_SPEC)):
            raise CheckpointError(f"{weights} is a directory but not a training run (no {MODEL_SPEC}); pass a run "
                                  f"directory of ours, a keras.applications .h5 file or 'imagenet'")
        spec = load_model_spec(weights)
        for key in RUN_SPEC_KEYS if build_kwargs else ():
            if spec.get(key) != build_kwargs.get(key):
                raise CheckpointError(f"run {weights} was trained with model.{key}={spec.get(key)!r}, this model has "
                                      f"{build_kwargs.get(key)!r}: --set model.{key}={spec.get(key)} to start from it")
        source = load_run(weights)
        if source.name != model.name:
            raise CheckpointError(f"{weights} holds a {source.name} run; its weights do not fit {model.name}: "
                                  f"train --model {source.name}, or pick another run")
        transfer_weights(source, model, include_classifier=False)
        return f"the weights of run {weights} (new classifier)"
    if weights != "imagenet" and not os.path.isfile(weights):
        raise CheckpointError(f"model.weights={weights!r} is neither 'imagenet' nor an existing .h5 file or run "
                              f"directory")
    load_keras_applications_weights(model, name, weights, width_multiplier, input_shape, num_classes)
    twin = PRETRAINED_TWIN.get(name, name)
    head = "with its classifier" if num_classes == 1000 else "new classifier"
    return f"keras.applications {twin} weights {weights!r} ({head})"

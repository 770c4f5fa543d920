"""Loading keras.applications MobileNet V1/V2/V3 weights into our models.

Our layers hold the same convolutions, BatchNorms and dense layers in the same
order as keras.applications builds them, so weights transfer one leaf layer at
a time (1x1 conv classifiers and dense layers differ only in kernel rank).
"""

import numpy as np
import tf_keras as keras

from mobilenets.errors import CheckpointError
from mobilenets.flops import leaf_layers

# name -> (keras.applications constructor, extra kwargs)
KERAS_APPLICATIONS = {
    "mobilenetv1": (keras.applications.MobileNet, {}),
    "mobilenetv2": (keras.applications.MobileNetV2, {}),
    "mobilenetv3_large": (keras.applications.MobileNetV3Large, {}),
    "mobilenetv3_small": (keras.applications.MobileNetV3Small, {}),
    "mobilenetv3_large_minimalistic": (keras.applications.MobileNetV3Large, {"minimalistic": True}),
    "mobilenetv3_small_minimalistic": (keras.applications.MobileNetV3Small, {"minimalistic": True}),
}


def keras_application(name, width_multiplier=1.0, input_shape=(224, 224, 3), num_classes=1000, weights=None):
    """The keras.applications twin of one of our models (logits out)."""
    if name not in KERAS_APPLICATIONS:
        raise CheckpointError(
            f"keras.applications has no weights for {name!r}; pretrained weights exist for: {', '.join(KERAS_APPLICATIONS)}"
        )
    constructor, extra = KERAS_APPLICATIONS[name]
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
        shapes = [tuple(w.shape) for w in dst.weights]
        if len(values) != len(shapes) or any(v.size != np.prod(s) for v, s in zip(values, shapes)):
            raise CheckpointError(
                f"cannot load weights of layer {src.name} {[v.shape for v in values]} into {dst.name} {shapes}; "
                "the architectures differ (check the model name and width_multiplier)"
            )
        dst.set_weights([v.reshape(s) for v, s in zip(values, shapes)])


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

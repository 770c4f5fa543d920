"""The weights a training starts from (model.weights, train.py --weights): a run of ours,
keras.applications' ImageNet weights ('imagenet' or a downloaded .h5, mobilenets.models.pretrained),
or timm's (MobileNetV4 / V3: a model.safetensors or a hub id, mobilenets.models.timm_weights).

A run's classifier is never taken: fine-tuning gives the new classes a new one.
"""

import os

from mobilenets.errors import CheckpointError
from mobilenets.models import timm_weights
from mobilenets.models.pretrained import PRETRAINED_TWIN, load_keras_applications_weights, transfer_weights
from mobilenets.runs import MODEL_SPEC, load_model_spec, load_run


# build_model arguments a run's weights depend on; --set model.KEY to match the run's model.json.
RUN_SPEC_KEYS = ("name", "width_multiplier", "config", "expansion", "groups", "condense_factor", "normalization",
                 "bn_epsilon", "padding")


def load_starting_weights(model, name, weights, width_multiplier, input_shape, num_classes, build_kwargs=None):
    """Loads `weights` into `model` (one of ours, built for `num_classes`): 'imagenet' or a
    keras.applications .h5 file (see load_keras_applications_weights), or a run directory of ours
    (its best, else last, checkpoint; same architecture and width, any classes). A run's classifier
    is never taken: fine-tuning gives the new classes a new one. `build_kwargs`: the model's
    build_model arguments, checked against the run's (RUN_SPEC_KEYS: a different input
    normalization would load silently and compute something else). timm's weights (a .safetensors file,
    a folder holding one, or a hub id): see mobilenets.models.timm_weights. Returns a one-line description."""
    if timm_weights.is_timm_source(weights):
        return _load_timm(model, name, weights, width_multiplier, build_kwargs)
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


def _load_timm(model, name, weights, width_multiplier, build_kwargs=None):
    """timm's weights into `model`, which must be built the way the checkpoint was trained (its
    normalization, BatchNorm epsilon and padding: train.py sets them, mobilenets.training.settings)."""
    checkpoint, settings = timm_weights.prepare(weights, name)
    for key, needed in settings.build_kwargs().items() if build_kwargs is not None else ():
        have = build_kwargs.get(key, {"bn_epsilon": 1e-3, "padding": "same"}.get(key))
        if have != needed:
            raise CheckpointError(f"{weights} needs model.{key}={needed!r} (the model has {have!r}); train.py sets "
                                  f"it from the checkpoint, else --set model.{key}={needed}")
    return timm_weights.load_timm_weights(model, name, checkpoint, width_multiplier)

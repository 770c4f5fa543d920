"""The config of a training command: a preset, a config file and overrides, in that order.

    resolve_config(model="mobilenetv2_lgc")                       # the model's default preset
    resolve_config(preset="smoke", overrides=["model.name=igcv3"])
    resolve_config(config_file="my.yaml", overrides=["optimizer.lr=0.05"])

A config file holds only what it changes; the rest comes from --preset, else from the default
preset of --model or of the file's own model.name, else from the Config defaults. Pure Python
(no TensorFlow), so a wrong flag fails in a fraction of a second.

A flat folder of photos (data.dataset=folder, ROOT/<class>/*.jpg, no train/validation folders)
holds out FOLDER_VALIDATION_FRACTION of each class for validation unless the command (a --set or
the config file) sets data.validation_fraction: users expect a validation figure, and the resolved
config.json records the split so that evaluation and export find it.

timm's weights (model.weights a .safetensors file or hub id, mobilenets.models.timm_weights) set how the
model is built, as the checkpoint was trained: its normalization, bn_epsilon 1e-5, symmetric padding,
and its input size unless the command (a --set or the config file) sets model.input_size. A hub id is
downloaded here (or found in the cache), so that offline fails at once, before TensorFlow loads.
"""

import os

from hparams import Config, apply_overrides, default_preset_for_model, get_preset
from hparams.config import read_config_file
from mobilenets.data.layout import is_flat
from mobilenets.errors import ConfigError

FOLDER_VALIDATION_FRACTION = 0.2  # as the finetune preset


def _base(model, preset, file_data):
    if preset:
        return get_preset(preset)
    file_model = file_data.get("model") if isinstance(file_data, dict) else None
    name = model or (file_model.get("name") if isinstance(file_model, dict) else None)
    return default_preset_for_model(name) if name else Config()


def resolve_config(model=None, preset=None, config_file=None, overrides=()):
    """The resolved hparams.Config; ConfigError (one line) on any mistake."""
    if not (model or preset or config_file):
        raise ConfigError("say what to train: --model NAME (its default preset), --preset NAME or --config FILE")
    file_data = read_config_file(config_file) if config_file else {}
    config = _base(model, preset, file_data)
    if config_file:
        try:
            config = Config.from_dict(file_data, base=config)
        except ConfigError as error:
            raise ConfigError(f"{config_file}: {error}") from None
    if model:
        config = apply_overrides(config, [f"model.name={model}"])
    config = apply_overrides(config, list(overrides))
    if _holds_out_by_default(config, file_data, overrides):
        config = apply_overrides(config, [f"data.validation_fraction={FOLDER_VALIDATION_FRACTION}"])
    return _built_for_timm_weights(config, file_data, overrides)


def _set_by_command(section, key, file_data, overrides):
    file_data = file_data.get(section) if isinstance(file_data, dict) else None
    set_by_file = isinstance(file_data, dict) and key in file_data
    return set_by_file or any(str(o).split("=", 1)[0].strip() == f"{section}.{key}" for o in overrides)


def _built_for_timm_weights(config, file_data, overrides):
    """`config` with the model built as timm's checkpoint in model.weights was trained (module docstring)."""
    from mobilenets.models import timm_weights  # no TensorFlow

    weights = config.model.weights
    if not weights or not timm_weights.is_timm_source(weights):
        return config
    _, settings = timm_weights.prepare(weights, config.model.name)
    if not isinstance(settings.normalization, str):
        raise ConfigError(f"{weights} normalizes with mean/std {settings.normalization} (0..255), which no "
                          f"model.normalization choice matches; build it with build_model(weights=...) instead")
    changes = {f"model.{key}": value for key, value in settings.build_kwargs().items()}
    if not _set_by_command("model", "input_size", file_data, overrides):
        changes["model.input_size"] = settings.input_size
    return apply_overrides(config, changes)


def _holds_out_by_default(config, file_data, overrides):
    """True for a flat folder of photos whose validation fraction is 0 and not set by the command."""
    data = config.data
    if data.dataset != "folder" or data.validation_fraction or not data.data_dir:
        return False
    file_data = file_data.get("data") if isinstance(file_data, dict) else None
    set_by_file = isinstance(file_data, dict) and "validation_fraction" in file_data
    set_by_override = any(str(o).split("=", 1)[0].strip() == "data.validation_fraction" for o in overrides)
    root = os.path.expanduser(data.data_dir)
    return not (set_by_file or set_by_override) and os.path.isdir(root) and is_flat(root)

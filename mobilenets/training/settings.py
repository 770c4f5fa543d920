"""The config of a training command: a preset, a config file and overrides, in that order.

    resolve_config(model="mobilenetv2_lgc")                       # the model's default preset
    resolve_config(preset="smoke", overrides=["model.name=igcv3"])
    resolve_config(config_file="my.yaml", overrides=["optimizer.lr=0.05"])

A config file holds only what it changes; the rest comes from --preset, else from the default
preset of --model or of the file's own model.name, else from the Config defaults. Pure Python
(no TensorFlow), so a wrong flag fails in a fraction of a second.
"""

from hparams import Config, apply_overrides, default_preset_for_model, get_preset
from hparams.config import read_config_file
from mobilenets.errors import ConfigError


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
    return apply_overrides(config, list(overrides))

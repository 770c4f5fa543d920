"""hparams: typed configs, presets, overrides, and the strictness of the parser."""

import dataclasses
import json
import math
import os
import pathlib
import sys
import tempfile
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hparams
from hparams import Config, apply_overrides, default_preset_for_model, get_preset, list_presets
from hparams.config import SECTIONS, field_types
from mobilenets.errors import ConfigError

PRESETS = list_presets()
try:
    import yaml  # noqa: F401

    HAVE_YAML = True
except ImportError:
    HAVE_YAML = False
# Raise HPARAMS_HYPOTHESIS_EXAMPLES (e.g. 3000) for a deeper, slower search of the parser.
FAST = settings(max_examples=int(os.environ.get("HPARAMS_HYPOTHESIS_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def render(value):
    """A typed value as a command-line override string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def assert_one_line_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def assert_round_trips(config):
    data = config.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON types only
    assert Config.from_dict(data) == config
    assert Config.from_dict(json.loads(json.dumps(data))) == config


# ----- presets -----------------------------------------------------------------------------------


def test_required_presets_exist():
    required = {
        "cifar100_mobilenetv2_lgc", "cifar100_mobilenetv2", "cifar10_mobilenetv2", "cifar100_igcv3", "cifar10_igcv3",
        "cifar100_mobilenetv1", "cifar100_mobilenetv2_gc", "imagenet_mobilenetv2", "imagenet_mobilenetv2_long",
        "imagenet_mobilenetv3_large", "imagenet_mobilenetv3_small", "imagenet_mobilenetv1", "smoke",
    }
    assert required <= set(PRESETS)
    assert PRESETS == sorted(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_round_trips_and_cites_its_source(name, tmp_path):
    config = get_preset(name)
    assert isinstance(config, Config)
    assert get_preset(name) == config  # deterministic
    assert_round_trips(config)
    for suffix in (".json", ".yaml") if HAVE_YAML else (".json",):
        path = tmp_path / f"config{suffix}"
        config.save(path)
        assert Config.load(path) == config
        assert Config.load(str(path)) == config
    assert json.loads((tmp_path / "config.json").read_text()) == config.to_dict()
    description = hparams.describe_preset(name)
    assert "\n" not in description and len(description) > 60
    if name != "smoke":
        assert "top-1" in description


def test_seed_lgc_recipe_is_exact():
    c = get_preset("cifar100_mobilenetv2_lgc")
    assert c.model.name == "mobilenetv2_lgc"
    assert c.model.config == "cifar" and c.model.input_size == 32
    assert c.model.dropout == 0.1  # keep_prob 0.9
    assert c.model.groups == 4 and c.model.condense_factor == 4
    assert c.data.dataset == "cifar100" and c.num_classes == 100
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.momentum, c.optimizer.nesterov) == ("sgd", 0.1, 0.9, True)
    assert c.regularization.weight_decay == 1e-4
    assert c.regularization.label_smoothing == 0.0
    assert (c.schedule.decay, c.schedule.per_batch, c.schedule.batch_size, c.schedule.epochs) == ("cosine", True, 64, 400)
    assert c.schedule.warmup_epochs == 0
    assert c.lgc.lasso_decay == 1e-5
    assert c.lgc.schedule == "condensenet"
    assert "76.30" in hparams.describe_preset("cifar100_mobilenetv2_lgc")


def test_published_recipe_values():
    v2 = get_preset("imagenet_mobilenetv2")
    assert (v2.schedule.batch_size, v2.schedule.epochs, v2.optimizer.lr, v2.schedule.decay) == (256, 150, 0.05, "cosine")
    assert v2.regularization.weight_decay == 4e-5 and v2.data.dataset == "imagenet" and v2.model.input_size == 224

    long = get_preset("imagenet_mobilenetv2_long")
    assert (long.schedule.batch_size, long.optimizer.lr, long.schedule.warmup_epochs, long.schedule.epochs) == (
        1024, 0.4, 5.0, 250)
    assert long.model.dropout == 0.2 and long.regularization.weight_decay_skip_bn_and_bias is True
    assert long.schedule.decay == "cosine" and "72.83" in hparams.describe_preset("imagenet_mobilenetv2_long")

    for name, accuracy in [("cifar100_mobilenetv2", "77.40"), ("cifar10_mobilenetv2", "94.56"),
                           ("cifar100_igcv3", "77.95"), ("cifar10_igcv3", "94.96"), ("cifar100_mobilenetv1", "77.10")]:
        c = get_preset(name)
        assert (c.optimizer.lr, c.optimizer.nesterov, c.optimizer.momentum) == (0.1, True, 0.9)
        assert c.regularization.weight_decay == 1e-4 and c.schedule.decay == "cosine"
        assert c.model.config == "cifar" and c.num_classes == (10 if name.startswith("cifar10_") else 100)
        assert accuracy in hparams.describe_preset(name)

    for name in ("imagenet_mobilenetv3_large", "imagenet_mobilenetv3_small"):
        c = get_preset(name)
        assert c.optimizer.name == "rmsprop" and c.model.name == name[len("imagenet_"):]

    smoke = get_preset("smoke")
    assert smoke.data.dataset == "synthetic" and smoke.run.steps_per_epoch and smoke.schedule.epochs <= 3


@pytest.mark.parametrize("model", hparams.MODEL_NAMES)
def test_default_preset_for_every_model(model):
    config = default_preset_for_model(model)
    assert config.model.name == model
    assert hparams.default_preset_name(model) in PRESETS
    assert_round_trips(config)


def test_default_preset_for_lgc_is_the_seed_recipe():
    assert hparams.default_preset_name("mobilenetv2_lgc") == "cifar100_mobilenetv2_lgc"
    assert default_preset_for_model("mobilenetv2_lgc") == get_preset("cifar100_mobilenetv2_lgc")


def test_unknown_preset_and_model_list_the_valid_names():
    with pytest.raises(ConfigError) as e:
        get_preset("cifar100_mobilenetv2_lcg")
    assert_one_line_error(e, "cifar100_mobilenetv2_lcg", "valid presets", *PRESETS)
    with pytest.raises(ConfigError) as e:
        hparams.describe_preset(["not", "hashable"])
    assert_one_line_error(e, "valid presets")
    with pytest.raises(ConfigError) as e:
        default_preset_for_model("mobilenetv4")
    assert_one_line_error(e, "mobilenetv4", "valid models", *hparams.MODEL_NAMES)


# ----- overrides ---------------------------------------------------------------------------------


def test_overrides_coerce_types_from_strings():
    base = get_preset("cifar100_mobilenetv2_lgc")
    c = apply_overrides(base, [
        "optimizer.lr=0.2", "schedule.epochs=3", "lgc.fixed_epochs=[66,132]", "run.xla=true",
        "optimizer.nesterov=False", "optimizer.clipnorm=1", "run.mixed_precision=mixed_bfloat16",
        "model.width_multiplier=1", "data.data_dir=/tmp/data dir", "run.steps_per_epoch=none",
        "model.expansion=4", "schedule.warmup_epochs=0.5",
    ])
    assert c.optimizer.lr == 0.2 and type(c.optimizer.lr) is float
    assert c.schedule.epochs == 3 and type(c.schedule.epochs) is int
    assert c.lgc.fixed_epochs == (66, 132)
    assert c.run.xla is True and c.optimizer.nesterov is False
    assert c.optimizer.clipnorm == 1.0 and type(c.optimizer.clipnorm) is float
    assert c.run.mixed_precision == "mixed_bfloat16"
    assert type(c.model.width_multiplier) is float
    assert c.data.data_dir == "/tmp/data dir"
    assert c.run.steps_per_epoch is None
    assert c.model.expansion == 4.0 and c.schedule.warmup_epochs == 0.5
    assert base.optimizer.lr == 0.1  # the input is not changed
    assert_round_trips(c)


def test_override_spellings():
    base = get_preset("smoke")
    assert apply_overrides(base, ["lgc.fixed_epochs=1,2"]).lgc.fixed_epochs == (1, 2)
    assert apply_overrides(base, ["lgc.fixed_epochs=[]"]).lgc.fixed_epochs == ()
    assert apply_overrides(base, ["lgc.fixed_epochs=7"]).lgc.fixed_epochs == (7,)
    assert apply_overrides(base, [" optimizer.lr = 1e-3 "]).optimizer.lr == 1e-3
    assert apply_overrides(base, ["optimizer.name='adam'"]).optimizer.name == "adam"
    assert apply_overrides(base, ["optimizer.clipnorm=null"]).optimizer.clipnorm is None
    assert apply_overrides(base, ["run.resume=yes"]).run.resume is True
    assert apply_overrides(base, "optimizer.lr=0.5").optimizer.lr == 0.5  # a single string
    assert apply_overrides(base, ["optimizer.lr=0.5", "optimizer.lr=0.25"]).optimizer.lr == 0.25  # last wins
    assert apply_overrides(base, []) == base


def test_override_mapping_takes_typed_values_and_strings():
    base = get_preset("smoke")
    c = apply_overrides(base, {"optimizer.lr": 1, "run.run_dir": "runs/a", "schedule.epochs": "4",
                               "run.seed": 7, "lgc.fixed_epochs": [1]})
    assert c.optimizer.lr == 1.0 and c.run.run_dir == "runs/a" and c.schedule.epochs == 4 and c.run.seed == 7
    assert c.lgc.fixed_epochs == (1,)
    with pytest.raises(ConfigError) as e:
        apply_overrides(base, {"schedule.epochs": 2.5})
    assert_one_line_error(e, "schedule.epochs", "integer")


def test_cross_field_rules_apply_after_all_overrides():
    long = get_preset("imagenet_mobilenetv2_long")
    with pytest.raises(ConfigError) as e:
        apply_overrides(long, ["schedule.epochs=3"])
    assert_one_line_error(e, "schedule.warmup_epochs", "schedule.epochs")
    assert apply_overrides(long, ["schedule.epochs=3", "schedule.warmup_epochs=0"]).schedule.epochs == 3
    lgc = get_preset("cifar100_mobilenetv2_lgc")
    c = apply_overrides(lgc, ["lgc.schedule=fixed_epochs", "lgc.fixed_epochs=[66,132,198]"])
    assert c.lgc.fixed_epochs == (66, 132, 198)
    for bad, fragment in [(["lgc.schedule=fixed_epochs"], "lgc.fixed_epochs"),
                          (["lgc.schedule=fixed_epochs", "lgc.fixed_epochs=[66,132]"], "condense_factor - 1 = 3"),
                          (["lgc.schedule=fixed_epochs", "lgc.fixed_epochs=[66,400,198]"], "increase"),
                          (["model.num_classes=10"], "has 100 classes"),
                          (["optimizer.name=adam"], "optimizer.nesterov"),
                          (["data.dataset=folder"], "data.data_dir"),
                          (["run.strategy=tpu", "run.mixed_precision=mixed_float16"], "mixed_bfloat16"),
                          (["schedule.min_lr=1"], "schedule.min_lr")]:
        with pytest.raises(ConfigError) as e:
            apply_overrides(lgc, bad)
        assert_one_line_error(e, fragment)


@pytest.mark.parametrize("override, fragments", [
    ("optim.lr=0.1", ["unknown section 'optim'", "did you mean 'optimizer'", "valid sections", *SECTIONS]),
    ("optimizer.lrr=0.1", ["unknown key 'optimizer.lrr'", "did you mean 'lr'", *field_types(SECTIONS["optimizer"])]),
    ("lr=0.1", ["optimizer.lr", "valid sections"]),
    ("optimizer=0.1", ["names a section", "lr", "momentum"]),
    ("optimizer.lr", ["section.key=value"]),
    ("model.name.x=1", ["section.key"]),
    ("optimizer.lr=fast", ["optimizer.lr", "number", "'fast'"]),
    ("optimizer.lr=nan", ["optimizer.lr", "finite"]),
    ("optimizer.lr=-0.1", ["optimizer.lr", "> 0"]),
    ("optimizer.lr=0", ["optimizer.lr", "> 0"]),
    ("schedule.batch_size=0", ["schedule.batch_size", ">= 1"]),
    ("schedule.batch_size=64.0", ["schedule.batch_size", "integer"]),
    ("schedule.per_batch=maybe", ["schedule.per_batch", "true or false"]),
    ("optimizer.name=adagrad", ["optimizer.name", "sgd", "adam", "adamw", "rmsprop", "'adagrad'"]),
    ("run.strategy=horovod", ["run.strategy", "default", "mirrored", "multi_worker", "tpu"]),
    ("run.mixed_precision=fp16", ["run.mixed_precision", "mixed_float16", "mixed_bfloat16", "null"]),
    ("schedule.decay=linear", ["schedule.decay", "cosine", "step", "constant"]),
    ("model.name=mobilenetv4", ["model.name", *hparams.MODEL_NAMES]),
    ("lgc.fixed_epochs=[1,x]", ["lgc.fixed_epochs", "list of integers"]),
    ("model.dropout=1", ["model.dropout", "[0, 1)"]),
    ("model.groups=null\nmodel.x=1", ["model.groups"]),
    ("schedule.epochs=null", ["schedule.epochs", "integer"]),
])
def test_bad_overrides_raise_one_line_config_errors(override, fragments):
    with pytest.raises(ConfigError) as e:
        apply_overrides(get_preset("cifar100_mobilenetv2_lgc"), [override])
    assert_one_line_error(e, *fragments)


@pytest.mark.parametrize("name", PRESETS)
def test_every_value_survives_its_own_override_string(name):
    config = get_preset(name)
    data = config.to_dict()
    overrides = [f"{section}.{key}={render(value)}" for section, values in data.items() for key, value in values.items()]
    assert apply_overrides(config, overrides) == config
    assert set(k.split("=")[0] for k in overrides) == set(hparams.valid_keys())


# ----- from_dict / files -------------------------------------------------------------------------


def test_from_dict_is_strict():
    good = get_preset("smoke").to_dict()
    cases = [
        ({**good, "optimiser": {}}, ["unknown section 'optimiser'", "valid sections"]),
        ({**good, "model": {**good["model"], "widht_multiplier": 1.0}}, ["unknown key 'model.widht_multiplier'",
                                                                       "width_multiplier", "valid keys of 'model'"]),
        ({**good, "optimizer": {**good["optimizer"], "lr": "0.1"}}, ["optimizer.lr", "number", "str"]),
        ({**good, "schedule": {**good["schedule"], "epochs": 3.0}}, ["schedule.epochs", "integer", "float"]),
        ({**good, "run": {**good["run"], "xla": 1}}, ["run.xla", "boolean"]),
        ({**good, "schedule": {**good["schedule"], "batch_size": True}}, ["schedule.batch_size", "integer"]),
        ({**good, "lgc": {**good["lgc"], "fixed_epochs": [1, 2.0]}}, ["lgc.fixed_epochs", "list of integers"]),
        ({**good, "optimizer": {**good["optimizer"], "lr": float("inf")}}, ["optimizer.lr", "finite"]),
        ({**good, "optimizer": {**good["optimizer"], "lr": 10**400}}, ["optimizer.lr"]),
        ({**good, "model": []}, ["section 'model'", "mapping"]),
        ([good], ["mapping"]),
        ({1: {}}, ["unknown section"]),
    ]
    for data, fragments in cases:
        with pytest.raises(ConfigError) as e:
            Config.from_dict(data)
        assert_one_line_error(e, *fragments)
    with_int_lr = Config.from_dict({**good, "optimizer": {**good["optimizer"], "lr": 1}})
    assert with_int_lr.optimizer.lr == 1.0 and type(with_int_lr.optimizer.lr) is float


def test_from_dict_fills_missing_keys_from_base_or_defaults():
    base = get_preset("cifar100_mobilenetv2_lgc")
    c = Config.from_dict({"optimizer": {"lr": 0.05}}, base=base)
    assert c.optimizer.lr == 0.05 and dataclasses.replace(c, optimizer=base.optimizer) == base
    assert Config.from_dict({}) == Config()


def test_configs_are_immutable_and_validated_on_every_construction():
    c = get_preset("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.optimizer.lr = 1.0
    with pytest.raises(ConfigError):
        dataclasses.replace(c.optimizer, lr=-1.0)
    with pytest.raises(ConfigError):
        hparams.ModelConfig(name="resnet50")


def test_load_yaml_partial_file_with_exponent_floats(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "exp.yaml"
    path.write_text("optimizer:\n  lr: 1e-4\n  name: adam\n  nesterov: false\nlgc:\n  fixed_epochs: [66, 132]\n")
    base = get_preset("cifar100_mobilenetv2_lgc")
    c = Config.load(path, base=base)
    assert c.optimizer.lr == 1e-4 and c.optimizer.name == "adam" and c.lgc.fixed_epochs == (66, 132)
    assert c.model == base.model


@pytest.mark.parametrize("suffix, text, fragments", [
    (".yaml", "optimizer:\n  lr: 0.1\n  lr: 0.2\n", ["duplicate key 'lr'"]),
    (".yaml", "optimizer: [unclosed\n", ["not valid YAML", "line"]),
    (".yaml", "optimizer:\n  lr: 2001-01-01\n", ["optimizer.lr", "number"]),
    (".yaml", "- 1\n- 2\n", ["mapping"]),
    (".json", '{"optimizer": {"lr": 0.1, "lr": 0.2}}', ["duplicate key 'lr'"]),
    (".json", '{"optimizer": ', ["not valid JSON", "line 1"]),
    (".json", '{"optimizer": {"lr": NaN}}', ["optimizer.lr", "finite"]),
    (".json", '{"optimizer": {"nesterov": "true"}}', ["optimizer.nesterov", "boolean"]),
    (".json", '{"model": {"name": "mobilenetv2", "bogus": 1}}', ["unknown key 'model.bogus'", "valid keys of 'model'"]),
])
def test_bad_config_files_raise_one_line_config_errors(tmp_path, suffix, text, fragments):
    if suffix == ".yaml":
        pytest.importorskip("yaml")
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        Config.load(path)
    assert_one_line_error(e, *fragments)


def test_missing_file_and_missing_pyyaml(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as e:
        Config.load(tmp_path / "nope.json")
    assert_one_line_error(e, "not found", "nope.json")
    path = tmp_path / "c.yaml"
    path.write_text("optimizer: {lr: 0.1}\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(ConfigError) as e:
        Config.load(path)
    assert_one_line_error(e, "PyYAML", ".json")


def test_save_is_atomic_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "runs" / "a" / "config.json"
    get_preset("smoke").save(path)
    get_preset("cifar100_mobilenetv2_lgc").save(path)  # overwrite in place
    assert os.listdir(path.parent) == ["config.json"]
    assert Config.load(path) == get_preset("cifar100_mobilenetv2_lgc")


def test_hparams_sources_do_not_import_tensorflow_or_keras():
    root = pathlib.Path(hparams.__file__).parent
    for source in root.glob("*.py"):
        text = source.read_text()
        for banned in ("import tensorflow", "import keras", "tf.keras", "import tf_keras", "from tensorflow"):
            assert banned not in text, (source.name, banned)


# ----- property-based: the parser accepts a valid config or raises ConfigError, nothing else -----

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
ALL_KEYS = hparams.valid_keys()
VALUE_WORDS = ["0", "1", "-1", "64", "0.5", "1e-4", "1e400", "nan", "true", "false", "yes", "null", "none", "",
               "[66,132]", "[1,x]", "66,132", "[]", "sgd", "adam", "rmsprop", "cosine", "step", "constant",
               "imagenet", "cifar", "cifar100", "synthetic", "mixed_bfloat16", "mixed_float16", "tpu",
               "fixed_epochs", "condensenet", "mobilenetv2_lgc", "igcv3", "inception", "'quoted'", "3.0"]


def field_values(tp):
    """Values for a field of type `tp`: mostly of the right shape (valid or out of range), some junk."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)][0]
        shaped = st.one_of(st.none(), field_values(inner))
    elif origin is typing.Literal:
        shaped = st.sampled_from(typing.get_args(tp))
    elif origin is tuple:
        shaped = st.lists(st.integers(0, 500), max_size=4, unique=True).map(sorted)
    elif tp is bool:
        shaped = st.booleans()
    elif tp is int:
        shaped = st.integers(-2, 500)
    elif tp is float:
        shaped = st.one_of(st.floats(-0.5, 2.0), st.integers(-1, 300))
    else:
        shaped = st.text(max_size=10)
    junk = st.one_of(json_scalars, st.sampled_from(VALUE_WORDS), st.lists(st.integers(-5, 500), max_size=3))
    return st.one_of(shaped, shaped, shaped, junk)


@st.composite
def mutated_dicts(draw):
    """A preset's dict with a few keys replaced (mostly), removed or added, or a section replaced."""
    data = get_preset(draw(st.sampled_from(PRESETS))).to_dict()
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(list(SECTIONS)))
        action = draw(st.integers(0, 19))  # hypothesis favours small numbers: 0 is the common case
        if action == 19:
            data[draw(st.sampled_from([section, "optimiser", ""]))] = draw(json_values)
        elif not isinstance(data.get(section), dict):
            continue
        elif action == 18:
            data[section].pop(draw(st.sampled_from(sorted(data[section]))), None)
        elif action == 17:
            data[section][draw(st.text(max_size=8))] = draw(json_scalars)
        else:
            key, tp = draw(st.sampled_from(sorted(field_types(SECTIONS[section]).items(), key=str)))
            data[section][key] = draw(field_values(tp))
    return data


def check_valid_or_config_error(build):
    try:
        config = build()
    except ConfigError as e:
        assert str(e) and "\n" not in str(e), str(e)
        return None
    assert isinstance(config, Config)
    assert_round_trips(config)
    return config


@FAST
@given(json_values)
def test_random_json_values_parse_or_raise_config_error(data):
    check_valid_or_config_error(lambda: Config.from_dict(data))


@FAST
@given(st.dictionaries(st.sampled_from(list(SECTIONS) + ["x", "Model"]),
                       st.dictionaries(st.sampled_from(sorted({k.split(".")[1] for k in ALL_KEYS}) + ["zz"]),
                                       st.one_of(json_scalars, st.sampled_from(VALUE_WORDS),
                                                 st.lists(st.integers(0, 500), max_size=3)), max_size=6),
                       max_size=4))
def test_random_section_dicts_parse_or_raise_config_error(data):
    check_valid_or_config_error(lambda: Config.from_dict(data))


@FAST
@given(mutated_dicts())
def test_mutated_preset_dicts_parse_or_raise_config_error(data):
    check_valid_or_config_error(lambda: Config.from_dict(data))


override_keys = st.one_of(st.sampled_from(ALL_KEYS), st.sampled_from(ALL_KEYS).map(str.upper), st.text(max_size=15),
                          st.builds("{}.{}".format, st.sampled_from(list(SECTIONS)), st.text(max_size=8)))
override_values = st.one_of(st.sampled_from(VALUE_WORDS), st.text(max_size=12),
                            st.floats().map(repr), st.integers(-(10**20), 10**20).map(str))
override_strings = st.one_of(st.builds("{}={}".format, override_keys, override_values), st.text(max_size=20))


@FAST
@given(st.sampled_from(PRESETS), st.lists(override_strings, max_size=5))
def test_random_overrides_apply_or_raise_config_error(preset, overrides):
    base = get_preset(preset)
    config = check_valid_or_config_error(lambda: apply_overrides(base, overrides))
    if config is not None and not overrides:
        assert config == base


@FAST
@given(st.sampled_from(PRESETS), st.dictionaries(override_keys, st.one_of(json_values, override_values), max_size=4))
def test_random_override_mappings_apply_or_raise_config_error(preset, overrides):
    check_valid_or_config_error(lambda: apply_overrides(get_preset(preset), overrides))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(PRESETS), st.lists(st.builds("{}={}".format, st.sampled_from(ALL_KEYS),
                                                    st.sampled_from(VALUE_WORDS)), max_size=4))
def test_overridden_configs_survive_save_and_load(preset, overrides):
    config = check_valid_or_config_error(lambda: apply_overrides(get_preset(preset), overrides))
    if config is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("c.json", "c.yaml") if HAVE_YAML else ("c.json",):
            path = os.path.join(tmp, name)
            config.save(path)
            assert Config.load(path) == config


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=1e-12, max_value=1e6))
def test_any_positive_learning_rate_round_trips_through_text(lr):
    config = apply_overrides(get_preset("smoke"), [f"optimizer.lr={lr!r}"])
    assert config.optimizer.lr == lr and not math.isnan(config.optimizer.lr)


def test_finetune_epochs_scale_its_head_phase():
    """`--preset finetune --epochs 2` trains the head 1 epoch of 2, as the preset's 10 of 20 (issue 33)."""
    from mobilenets.training.settings import resolve_config

    heads = {epochs: resolve_config(preset="finetune", overrides=[f"schedule.epochs={epochs}"]).finetune.head_epochs
             for epochs in (1, 2, 4, 20, 40)}
    assert heads == {1: 0, 2: 1, 4: 2, 20: 10, 40: 20}
    chosen = resolve_config(preset="finetune", overrides=["schedule.epochs=4", "finetune.head_epochs=3"])
    assert chosen.finetune.head_epochs == 3  # what the command sets stays

"""Every model name goes through here: `list_models()` and `build_model(name, ...)` (the names and
their tables are `mobilenets.models.zoo`)."""

from mobilenets.errors import ConfigError, ModelError
from mobilenets.models import builder, timm_weights, zoo
from mobilenets.models.zoo import MODELS


def native_input_shape(name, config="imagenet"):
    """The input a model is built for by default: its table's native resolution for 'imagenet'
    (224, or MobileNetV4's 256 / 384), 32x32 for 'cifar'."""
    return builder.native_input_shape(get_entry(name).arch, config)


def list_models():
    return sorted(MODELS)


def get_entry(name):
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return MODELS[name]


def is_learned_group_model(name):
    """Whether the model's 1x1 convolutions are learned group convolutions (CondenseNet, Huang et al. 2018)."""
    get_entry(name)
    return zoo.is_learned_group_model(name)


def build_model(
    name,
    num_classes=1000,
    input_shape=None,
    width_multiplier=1.0,
    dropout=0.0,
    config="imagenet",
    expansion=None,
    groups=None,
    condense_factor=4,
    normalization=None,
    bn_momentum=0.99,
    weights=None,
    drop_path_rate=0.0,
    include_top=True,
    pooling=None,
    features_only=False,
    out_indices=None,
    bn_epsilon=None,
    padding=None,
):
    """Builds a registered model; it takes raw 0..255 pixels and returns logits, or features (a backbone).

    config: 'imagenet' (default input: the native resolution, 224x224 but for MobileNetV4-M 256
    and -L 384) or 'cifar' (32x32, seed strides).
    expansion: replaces every expansion ratio t != 1 (the seed's 'V2 t=4').
    groups / condense_factor: for the GC, LGC and IGCV3 variants (G1 = G2 for IGCV3).
    weights: None, 'imagenet' or a keras.applications weights file (V1/V2/V3 only), or timm's weights
        (MobileNetV4, V3; mobilenets.models.timm_weights): a model.safetensors file or a hub id such as
        'timm/mobilenetv4_conv_small.e2400_r224_in1k'. The model is then built as the checkpoint was
        trained: its normalization, bn_epsilon 1e-5, symmetric padding and (input_shape None) input size;
        any of these three given otherwise is a one-line ConfigError.
    normalization: of the raw pixels, in the first layer (default 'inception': [-1, 1]).
    bn_epsilon: BatchNorm epsilon (default keras.applications' 1e-3; PyTorch's 1e-5). padding: of strided
        convs, 'same' (TensorFlow's, the default) or 'symmetric' (PyTorch's).
    drop_path_rate: stochastic depth of the last block, linear over depth (builder.build).

    Backbones, as keras.applications and timm build them, with the classifier's layer names (its
    weights load into them, and `weights` applies):
    include_top=False: everything before global pooling, the head conv included (keras.applications'
        include_top=False: V2's 1280-wide Conv_1, V3's Conv_1), a (H/32, W/32, C) map (config='cifar':
        H/4); pooling='avg' or 'max' pools it to a vector.
    features_only=True: a dict {'stride_2': map, 'stride_4': ..., 'stride_32': ...}, the last output at
        each stride (timm's feature_info; channels: `feature_maps`). out_indices picks some (default:
        all): with config='imagenet' (0, 1, 2, 3, 4) are strides 2, 4, 8, 16, 32. config='cifar' runs
        the stem and the next two downsamplings at stride 1, so its maps are at strides 1, 2 and 4
        (32x32, 16x16 and 8x8 for a 32x32 image) and out_indices (0, 1, 2) are those three.
    """
    entry = get_entry(name)
    checkpoint = None
    if weights is not None and timm_weights.is_timm_source(weights):  # built the way the checkpoint was trained
        checkpoint, settings = timm_weights.prepare(weights, name)
        given = {"normalization": normalization, "bn_epsilon": bn_epsilon, "padding": padding}
        for key, needed in settings.build_kwargs().items():
            if given[key] is not None and not _same(given[key], needed):
                raise ConfigError(f"{weights} needs {key}={needed!r} (its model was trained so), not "
                                  f"{key}={given[key]!r}: drop {key}= and it is built so")
        normalization, bn_epsilon, padding = settings.normalization, settings.bn_epsilon, settings.padding
        if config == "imagenet" and input_shape is None:
            input_shape = (settings.input_size, settings.input_size, 3)
    normalization = "inception" if normalization is None else normalization
    bn_epsilon = 1e-3 if bn_epsilon is None else bn_epsilon
    padding = "same" if padding is None else padding
    if not (isinstance(bn_epsilon, (int, float)) and bn_epsilon > 0):
        raise ModelError(f"bn_epsilon must be a positive number, got {bn_epsilon!r}")
    input_shape = tuple(input_shape or native_input_shape(name, config))
    if expansion is not None and not (isinstance(expansion, (int, float)) and expansion > 0):
        raise ModelError(f"expansion must be a positive number, got {expansion!r}")
    if expansion is not None and not any(stage.block in ("ir", "igcv3") for stage in entry.arch.stages):
        raise ModelError(f"{name} has no expansion ratio; drop expansion= or pick a MobileNetV2-family model")
    groups = entry.default_groups if groups is None else groups
    if not isinstance(groups, int) or groups < 1 or not isinstance(condense_factor, int) or condense_factor < 1:
        raise ModelError(f"groups and condense_factor must be positive integers, got {groups!r}, {condense_factor!r}")
    arch = builder.architecture(entry.arch, config, expansion, entry.minimal)
    model = builder.build(
        arch,
        num_classes=num_classes,
        input_shape=input_shape,
        width_multiplier=width_multiplier,
        dropout=dropout,
        normalization=normalization,
        bn_momentum=bn_momentum,
        block_options=entry.block_options(groups, condense_factor) if entry.block_options else None,
        drop_path_rate=drop_path_rate,
        name=name,
        include_top=include_top,
        pooling=pooling,
        features_only=features_only,
        out_indices=out_indices,
        bn_epsilon=bn_epsilon,
        padding=padding,
    )
    if checkpoint is not None:
        timm_weights.load_timm_weights(model, name, checkpoint, width_multiplier)
    elif weights is not None:
        from mobilenets.models import pretrained

        classes = num_classes if builder.has_classifier(model) else None  # a backbone takes no classifier
        pretrained.load_keras_applications_weights(model, name, weights, width_multiplier, input_shape, classes)
    return model


def _same(given, needed):
    """Whether a build argument given is the value a checkpoint needs (a (mean, std) pair as lists or tuples)."""
    if isinstance(given, str) or isinstance(needed, str):
        return given == needed
    if isinstance(given, (list, tuple)) and isinstance(needed, (list, tuple)):
        return len(given) == len(needed) and all(_same(a, b) for a, b in zip(given, needed))
    return given == needed


def feature_maps(name, width_multiplier=1.0, config="imagenet", expansion=None):
    """The feature maps `build_model(name, features_only=True)` returns, shallowest first, without building it:
    `builder.FeatureMap`s (output name 'stride_<s>', stride, channels, the layer it is the output of)."""
    entry = get_entry(name)
    return builder.feature_maps(builder.architecture(entry.arch, config, expansion, entry.minimal), width_multiplier)

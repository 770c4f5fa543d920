"""timm's ImageNet weights in our MobileNetV4s and MobileNetV3s, from its `.safetensors` checkpoints.

    build_model("mobilenetv4_conv_small", weights="timm/mobilenetv4_conv_small.e2400_r224_in1k")  # hub id
    build_model("mobilenetv4_conv_small", weights="~/models/conv_small/model.safetensors")        # local file
    python train.py --preset finetune --model mobilenetv4_conv_small --weights FILE_OR_HUB_ID --data-dir photos/

A checkpoint is timm's `model.safetensors` (read with numpy through `safetensors`, never torch),
its tensors named after timm's modules (timm 1.0, timm/models/mobilenetv3.py and
_efficientnet_blocks.py): the stem `conv_stem` + `bn1`, the blocks `blocks.{stage}.{block}.*`,
the head `conv_head` [+ `norm_head`] and `classifier`. Our trunk holds the same convolutions in the
same order (stem, block_0 ... block_N-1, V3's head conv = timm's last block); timm's stages only
group them, so the blocks pair up in order. Each of our block types names its tensors as timm's
block of that type does (`_block_tensors`); PyTorch kernels are OIHW (depthwise: C,1,kh,kw), ours
HWIO (kh,kw,C,1). Every tensor of the file and every weight of the model is checked, key and
shape, before anything is loaded; a file of another model or width names the one it fits.

timm's weights were trained in PyTorch, so the model is built the PyTorch way (`checkpoint_settings`):
BatchNorm epsilon 1e-5 (ours 1e-3, keras.applications'), strided convs padded by kernel // 2 on
every side (TF's SAME pads the bottom and right only; padding="symmetric"), and the first layer
normalizing with the checkpoint's own mean and std (x 255: the model still takes raw 0..255 pixels).
The rest of timm's mobilenetv3_large_100 / _small_100 is our MobileNetV3 exactly: squeeze-excite
width make_divisible(expanded / 4, 8) with ReLU and hard-sigmoid gate, a head conv with bias after
pooling, the stem of 16 at every width; benchmarks/timm_reference.py checks all seven models
against timm, logits and feature maps.

A hub id downloads into huggingface_hub's cache (model.safetensors and config.json, whose
pretrained_cfg gives the input size and mean/std); offline (MOBILENETS_OFFLINE=1, HF_HUB_OFFLINE=1
or no route to the hub) a cached copy is used, else one line names the file to fetch. A bare
local file takes config.json from beside it, else its tag's known settings (TIMM_TAGS).
"""

import dataclasses
import json
import os
import re
import urllib.parse
from typing import Optional

from mobilenets.errors import CheckpointError, first_line
from mobilenets.models.zoo import MODELS
from mobilenets.network import PROBE_TIMEOUT, can_connect

# our model -> timm's architecture of the same network
TIMM_ARCHITECTURES = {
    "mobilenetv4_conv_small": "mobilenetv4_conv_small",
    "mobilenetv4_conv_medium": "mobilenetv4_conv_medium",
    "mobilenetv4_conv_large": "mobilenetv4_conv_large",
    "mobilenetv4_hybrid_medium": "mobilenetv4_hybrid_medium",
    "mobilenetv4_hybrid_large": "mobilenetv4_hybrid_large",
    "mobilenetv3_large": "mobilenetv3_large_100",
    "mobilenetv3_small": "mobilenetv3_small_100",
}
OUR_NAMES = {timm: ours for ours, timm in TIMM_ARCHITECTURES.items()}

# timm 1.0.31's pretrained tags of those architectures (timm.list_pretrained): input side, and mean/std as
# our normalization name. The first of each is timm's default tag. in12k: ImageNet-12k (11821 classes),
# in21k: ImageNet-21k (11221): their classifiers fit a model of as many classes, any other gets a new one.
TIMM_TAGS = {
    "mobilenetv4_conv_small": {"e2400_r224_in1k": (224, "imagenet"), "e1200_r224_in1k": (224, "imagenet"),
                               "e3600_r256_in1k": (256, "inception")},
    "mobilenetv4_conv_medium": {"e500_r256_in1k": (256, "imagenet"), "e500_r224_in1k": (224, "imagenet"),
                                "e250_r384_in12k_ft_in1k": (384, "imagenet"),
                                "e250_r384_in12k": (384, "imagenet"), "e180_r384_in12k": (384, "imagenet"),
                                "e180_ad_r384_in12k": (384, "imagenet")},
    "mobilenetv4_conv_large": {"e600_r384_in1k": (384, "imagenet"), "e500_r256_in1k": (256, "imagenet")},
    "mobilenetv4_hybrid_medium": {"e200_r256_in12k_ft_in1k": (256, "imagenet"),
                                  "ix_e550_r384_in1k": (384, "imagenet"),
                                  "ix_e550_r256_in1k": (256, "imagenet"),
                                  "e500_r224_in1k": (224, "imagenet"),
                                  "e200_r256_in12k": (256, "imagenet")},
    "mobilenetv4_hybrid_large": {"ix_e600_r384_in1k": (384, "imagenet"), "e600_r384_in1k": (384, "imagenet")},
    "mobilenetv3_large_100": {"ra_in1k": (224, "imagenet"), "ra4_e3600_r224_in1k": (224, "inception"),
                              "miil_in21k_ft_in1k": (224, "unit"), "miil_in21k": (224, "unit")},
    "mobilenetv3_small_100": {"lamb_in1k": (224, "imagenet")},
}
# timm's mean / std (of 0..1 pixels) -> our normalization of the same (x 255, layers.NORMALIZATIONS)
TIMM_NORMALIZATIONS = {
    ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)): "imagenet",  # timm IMAGENET_DEFAULT_MEAN / _STD
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)): "inception",  # IMAGENET_INCEPTION_MEAN / _STD
    ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)): "unit",  # the MIIL ImageNet-21k weights
}
BN_EPSILON = 1e-5  # PyTorch's BatchNorm2d default, which timm keeps
PADDING = "symmetric"  # PyTorch's padding of timm's non-tf_ models (timm.layers.padding.get_padding)
WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
HUB = "https://huggingface.co"
_HUB_ID = re.compile(r"^(?:hf-hub:)?([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*)$")


# ---------------------------------------------------------------- what a weights argument names


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A timm checkpoint on this machine: its file, its config.json (or None) and what names it."""

    path: str
    config: Optional[dict]
    source: str  # what the user passed
    architecture: Optional[str] = None  # timm's, when the hub id, config or path names one
    tag: Optional[str] = None


def hub_id(weights):
    """(owner, name) of a Hugging Face hub id such as 'timm/mobilenetv4_conv_small.e2400_r224_in1k'
    (or 'hf-hub:timm/...', timm's spelling), None for anything else or an existing path."""
    if not isinstance(weights, str) or os.path.exists(weights):
        return None
    match = _HUB_ID.match(weights)
    if not match or match.group(2).endswith((".safetensors", ".h5", ".keras")):
        return None
    owner, name = match.groups()
    return (owner, name) if owner == "timm" or name.split(".")[0] in OUR_NAMES else None


def is_timm_source(weights):
    """Whether `weights` names a timm checkpoint: a .safetensors file, a folder holding model.safetensors
    (a downloaded hub snapshot) or a hub id of timm's."""
    if not isinstance(weights, str):
        return False
    path = os.path.expanduser(weights)
    if path.endswith(".safetensors"):
        return True
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, WEIGHTS_FILE)) and not os.path.isfile(os.path.join(path, "model.json"))
    return hub_id(weights) is not None


def _named_tag(text):
    """(timm architecture, tag) named in a hub id or a path ('...mobilenetv4_conv_small.e2400_r224_in1k...'),
    (None, None) when it names none of ours; tag None when it names the architecture alone."""
    for architecture in sorted(OUR_NAMES, key=len, reverse=True):
        match = re.search(re.escape(architecture) + r"(?:\.([A-Za-z0-9_]+))?(?![A-Za-z0-9_])", text)
        if match:
            return architecture, match.group(1)
    return None, None


def locate(weights, name=None):
    """The `Checkpoint` `weights` names: downloaded (or found in the cache) for a hub id. CheckpointError
    (one line) for a hub id of another architecture, one that is not `name`'s, or a missing file."""
    ids = hub_id(weights)
    if ids is not None:
        return _hub_checkpoint(weights, *ids, name)
    path = os.path.expanduser(weights)
    if os.path.isdir(path):
        path = os.path.join(path, WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"{weights} does not exist; pass timm's model.safetensors (a file), or a hub id "
                              f"such as timm/{_default_id('mobilenetv4_conv_small')}")
    config_path = os.path.join(os.path.dirname(path), CONFIG_FILE)
    config = _read_config(config_path) if os.path.isfile(config_path) else None
    architecture, tag = _named_tag(os.path.abspath(path))
    if config is not None:
        architecture = config.get("architecture", architecture)
        tag = config.get("pretrained_cfg", {}).get("tag", tag)
    return Checkpoint(path, config, weights, architecture, tag)


def _default_id(architecture):
    return f"{architecture}.{next(iter(TIMM_TAGS[architecture]))}"


def _hub_checkpoint(weights, owner, repo, name):
    architecture, tag = repo.split(".", 1) if "." in repo else (repo, None)
    if architecture not in OUR_NAMES:
        known = ", ".join(f"timm/{_default_id(a)}" for a in TIMM_TAGS)
        raise CheckpointError(f"{weights} is not a timm architecture we load weights for; pass one of the "
                              f"MobileNetV4 / V3 hub ids (e.g. {known}) or a local model.safetensors")
    _check_architecture(weights, architecture, name)
    if tag is None:  # the architecture alone: timm's default tag, as timm.create_model(pretrained=True) takes
        tag = next(iter(TIMM_TAGS[architecture]))
    repo_id = f"{owner}/{architecture}.{tag}"
    path, config_path = _hub_files(repo_id)
    config = _read_config(config_path) if config_path else None
    return Checkpoint(path, config, weights, architecture, tag)


def _check_architecture(source, architecture, name):
    if name is not None and architecture in OUR_NAMES and OUR_NAMES[architecture] != name:
        raise CheckpointError(f"{source} holds {OUR_NAMES[architecture]} weights (timm {architecture}), not "
                              f"{name}: pass --model {OUR_NAMES[architecture]}")


def _read_config(path):
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not timm's config.json ({first_line(error, 100)}); delete it or fetch it "
                              f"again") from None
    if not isinstance(config, dict) or not isinstance(config.get("pretrained_cfg", {}), dict):
        raise CheckpointError(f"{path} is not timm's config.json (no pretrained_cfg); delete it or fetch it again")
    return config


# ---------------------------------------------------------------- the Hugging Face hub


def offline():
    """True when told not to use the network (MOBILENETS_OFFLINE, huggingface_hub's HF_HUB_OFFLINE)."""
    return any(os.environ.get(key, "").strip().lower() in ("1", "true", "yes", "on")
               for key in ("MOBILENETS_OFFLINE", "HF_HUB_OFFLINE"))


def hub_reachable(timeout=PROBE_TIMEOUT):
    """Whether the hub answers within `timeout` seconds: huggingface_hub itself retries for half a
    minute before it gives up."""
    return can_connect(HUB, timeout)


def _offline_error(repo_id, reason):
    folder = f"~/models/{repo_id}"
    return CheckpointError(
        f"cannot download {repo_id} ({reason}): on a machine with network fetch {HUB}/{repo_id}/resolve/main/"
        f"{WEIGHTS_FILE} (and {CONFIG_FILE} beside it), put them in a folder such as {folder}/ and pass "
        f"--weights {folder}/{WEIGHTS_FILE}")


def _hub_files(repo_id):
    """(model.safetensors, config.json or None) of `repo_id` in huggingface_hub's cache, downloaded
    there first when not yet cached and the network is allowed and reachable."""
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    def fetch(filename, **kwargs):
        return huggingface_hub.hf_hub_download(repo_id, filename, **kwargs)

    try:
        return fetch(WEIGHTS_FILE, local_files_only=True), _cached_config(fetch)
    except hub_errors.LocalEntryNotFoundError:
        pass
    if offline():
        raise _offline_error(repo_id, "offline: MOBILENETS_OFFLINE or HF_HUB_OFFLINE is set") from None
    if not hub_reachable():
        raise _offline_error(repo_id, f"no connection to {urllib.parse.urlsplit(HUB).hostname}") from None
    huggingface_hub.utils.logging.set_verbosity_error()  # its retry warnings would break the one-line error
    try:
        config = fetch(CONFIG_FILE)
        return fetch(WEIGHTS_FILE), config
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError):
        architecture = repo_id.split("/", 1)[1].split(".")[0]
        tags = ", ".join(TIMM_TAGS.get(architecture, ()))
        raise CheckpointError(f"the hub has no {repo_id}; timm's tags of {architecture}: {tags}") from None
    except hub_errors.EntryNotFoundError:
        raise CheckpointError(f"{repo_id} on the hub has no {WEIGHTS_FILE}: it is not a timm checkpoint") from None
    except (hub_errors.HfHubHTTPError, OSError, ValueError) as error:
        raise _offline_error(repo_id, first_line(error, 120)) from None


def _cached_config(fetch):
    from huggingface_hub import errors as hub_errors

    try:
        return fetch(CONFIG_FILE, local_files_only=True)
    except hub_errors.LocalEntryNotFoundError:
        return None


# ---------------------------------------------------------------- how the model is built for a checkpoint


@dataclasses.dataclass(frozen=True)
class Settings:
    """build_model arguments a checkpoint needs (normalization: a name of layers.NORMALIZATIONS, or
    (mean, std) in 0..255 pixel units when it is none of them) and the input side it was trained at."""

    normalization: object
    input_size: int
    bn_epsilon: float = BN_EPSILON
    padding: str = PADDING

    def build_kwargs(self):
        return {"normalization": self.normalization, "bn_epsilon": self.bn_epsilon, "padding": self.padding}


def checkpoint_settings(weights, name=None):
    """The `Settings` of the checkpoint `weights` names (see `locate`): its config.json's pretrained_cfg,
    else its tag's (TIMM_TAGS), else the default tag's of `name`'s architecture. No TensorFlow."""
    checkpoint = weights if isinstance(weights, Checkpoint) else locate(weights, name)
    _check_architecture(checkpoint.source, checkpoint.architecture, name)
    architecture = checkpoint.architecture or TIMM_ARCHITECTURES.get(name)
    tags = TIMM_TAGS.get(architecture, {})
    side, normalization = tags.get(checkpoint.tag) or next(iter(tags.values()), (None, "imagenet"))
    pretrained = (checkpoint.config or {}).get("pretrained_cfg", {})
    if "input_size" in pretrained:
        side = int(pretrained["input_size"][-1])
    if "mean" in pretrained and "std" in pretrained:
        normalization = _normalization(pretrained["mean"], pretrained["std"])
    if side is None:
        side = MODELS[name].arch.input_size if name in MODELS else 224
    return Settings(normalization, side)


def prepare(weights, name):
    """(the `Checkpoint` of `weights`, its `Settings`) for building our `name` to load it. CheckpointError
    (one line) before anything is built when timm has no such model, or the file is unreadable or holds
    another model (read from its hub id, config.json, or its tensors' names and kernel sizes)."""
    if name not in TIMM_ARCHITECTURES:
        raise CheckpointError(f"timm has no weights for {name}; timm weights load into {', '.join(TIMM_ARCHITECTURES)}")
    checkpoint = locate(weights, name)
    shapes = tensor_shapes(checkpoint.path)
    if held_model(shapes) != name:
        raise CheckpointError(mismatch(checkpoint.source, shapes, name))
    return checkpoint, checkpoint_settings(checkpoint, name)


def _normalization(mean, std):
    """Our normalization name of timm's mean/std, else the pair in raw pixel units."""
    for (named_mean, named_std), named in TIMM_NORMALIZATIONS.items():
        if all(abs(a - b) < 1e-6 for a, b in zip((*mean, *std), (*named_mean, *named_std))):
            return named
    return ([255.0 * m for m in mean], [255.0 * s for s in std])


# ---------------------------------------------------------------- reading a file


def tensor_shapes(path):
    """{name: shape} of a safetensors file, its header only; CheckpointError for anything else."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "np") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {path} as a safetensors file ({first_line(error, 100)}); it is "
                              f"truncated or corrupt: download it again") from None


def read_tensors(path):
    """{name: float32 numpy array} of a safetensors file."""
    import numpy as np
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"cannot read the tensors of {path} ({first_line(error, 100)}); it is truncated, "
                              f"corrupt or of a dtype numpy lacks (bfloat16): download timm's float32 file") from None
    return {key: value.astype(np.float32) if value.dtype.kind == "f" else value for key, value in tensors.items()}


# ---------------------------------------------------------------- timm's tensors of our layers


def _batch_norm(prefix, bn):
    return [(f"{prefix}.weight", bn.gamma, "vector"), (f"{prefix}.bias", bn.beta, "vector"),
            (f"{prefix}.running_mean", bn.moving_mean, "vector"), (f"{prefix}.running_var", bn.moving_variance, "vector")]


def _conv_bn(conv, bn, layer):
    """A ConvBNAct / DepthwiseBNAct `layer` as timm's conv `conv` and BatchNorm `bn`."""
    if hasattr(layer.conv, "depthwise_kernel"):
        return [(f"{conv}.weight", layer.conv.depthwise_kernel, "depthwise"), *_batch_norm(bn, layer.bn)]
    return [(f"{conv}.weight", layer.conv.kernel, "conv"), *_batch_norm(bn, layer.bn)]


def _squeeze_excite(prefix, se):
    return [(f"{prefix}.se.conv_reduce.weight", se.reduce.kernel, "conv"),
            (f"{prefix}.se.conv_reduce.bias", se.reduce.bias, "vector"),
            (f"{prefix}.se.conv_expand.weight", se.expand.kernel, "conv"),
            (f"{prefix}.se.conv_expand.bias", se.expand.bias, "vector")]


def _layer_scale(prefix, layer):
    return [(f"{prefix}.layer_scale.gamma", layer.scale.gamma, "vector")] if layer.scale is not None else []


def _block_tensors(p, layer):
    """[(timm key, our variable, layout)] of one trunk layer whose timm module is `p` ('' for the stem)."""
    from mobilenets.models.attention import MobileMQA
    from mobilenets.models.blocks import FusedInvertedBottleneck, InvertedResidual, UniversalInvertedBottleneck
    from mobilenets.models.layers import ConvBNAct

    if isinstance(layer, ConvBNAct):  # timm's stem (conv_stem + bn1) or ConvBnAct block
        return _conv_bn(f"{p}.conv", f"{p}.bn1", layer) if p else _conv_bn("conv_stem", "bn1", layer)
    if isinstance(layer, UniversalInvertedBottleneck):  # timm's UniversalInvertedResidual
        parts = (("dw_start", layer.start_dw), ("pw_exp", layer.expand), ("dw_mid", layer.middle_dw),
                 ("pw_proj", layer.project))
        tensors = [t for part, ours in parts if ours is not None for t in _conv_bn(f"{p}.{part}.conv", f"{p}.{part}.bn", ours)]
        return tensors + _layer_scale(p, layer)
    if isinstance(layer, FusedInvertedBottleneck):  # timm's EdgeResidual
        return _conv_bn(f"{p}.conv_exp", f"{p}.bn1", layer.expand) + _conv_bn(f"{p}.conv_pwl", f"{p}.bn2", layer.project)
    if isinstance(layer, MobileMQA):  # timm's MobileAttention around MultiQueryAttention2d
        tensors = [*_batch_norm(f"{p}.norm", layer.norm), (f"{p}.attn.query.proj.weight", layer.query.kernel, "conv")]
        for part, down, proj in (("key", layer.key_dw, layer.key), ("value", layer.value_dw, layer.value)):
            if down is not None:
                tensors += _conv_bn(f"{p}.attn.{part}.down_conv", f"{p}.attn.{part}.norm", down)
            tensors.append((f"{p}.attn.{part}.proj.weight", proj.kernel, "conv"))
        tensors.append((f"{p}.attn.output.proj.weight", layer.output_proj.kernel, "conv"))
        return tensors + _layer_scale(p, layer)
    if isinstance(layer, InvertedResidual):
        se = _squeeze_excite(p, layer.squeeze_excite) if layer.squeeze_excite is not None else []
        if not layer.expand_conv:  # timm's DepthwiseSeparableConv
            return _conv_bn(f"{p}.conv_dw", f"{p}.bn1", layer.depthwise) + se + _conv_bn(f"{p}.conv_pw", f"{p}.bn2",
                                                                                         layer.project)
        return (_conv_bn(f"{p}.conv_pw", f"{p}.bn1", layer.expand) + _conv_bn(f"{p}.conv_dw", f"{p}.bn2", layer.depthwise)
                + se + _conv_bn(f"{p}.conv_pwl", f"{p}.bn3", layer.project))
    raise CheckpointError(f"timm has no counterpart of {layer.name} ({type(layer).__name__}); timm weights load into "
                          f"{', '.join(TIMM_ARCHITECTURES)}")


def _head_tensors(model):
    """timm's head tensors of the model's head layers (none for a backbone)."""
    import tf_keras as keras

    names = {layer.name: layer for layer in model.layers}
    tensors = []
    hidden = names.get("head_dense")
    if isinstance(hidden, keras.layers.Dense):  # MobileNetV3: conv_head (1x1, bias) on the pooled features
        tensors += [("conv_head.weight", hidden.kernel, "dense_from_conv"), ("conv_head.bias", hidden.bias, "vector")]
    elif hidden is not None:  # MobileNetV4: conv_head (1x1, no bias) + norm_head
        tensors += _conv_bn("conv_head", "norm_head", hidden)
    if "logits" in names:
        tensors += [("classifier.weight", names["logits"].kernel, "linear"), ("classifier.bias", names["logits"].bias, "vector")]
    return tensors


def trunk_layers(model):
    """Our trunk's layers in call order: stem, block_0 ..., head_conv (those the model has)."""
    names = [layer.name for layer in model.layers]
    blocks = sorted((name for name in names if re.fullmatch(r"block_\d+", name)), key=lambda n: int(n.split("_")[1]))
    return [model.get_layer(name) for name in ("stem", *blocks, "head_conv") if name in names]


def timm_units(shapes):
    """timm's trunk modules in a checkpoint, in call order: '' (the stem) and 'blocks.S.B' by (S, B)."""
    units = {tuple(int(i) for i in match.groups()) for key in shapes
             if (match := re.match(r"blocks\.(\d+)\.(\d+)\.", key))}
    return [""] * ("conv_stem.weight" in shapes) + [f"blocks.{s}.{b}" for s, b in sorted(units)]


def torch_shape(variable, layout):
    """The PyTorch shape of our `variable` in `layout`."""
    shape = tuple(variable.shape)
    if layout == "conv":  # HWIO -> OIHW
        return (shape[3], shape[2], shape[0], shape[1])
    if layout == "depthwise":  # (kh, kw, C, 1) -> (C, 1, kh, kw)
        return (shape[2], shape[3], shape[0], shape[1])
    if layout == "dense_from_conv":  # (in, out) -> (out, in, 1, 1)
        return (shape[1], shape[0], 1, 1)
    if layout == "linear":  # (in, out) -> (out, in)
        return (shape[1], shape[0])
    return shape


def to_keras(value, layout):
    """A PyTorch tensor (numpy) in our layout `layout`."""
    if layout == "conv":
        return value.transpose(2, 3, 1, 0)
    if layout == "depthwise":
        return value.transpose(2, 3, 0, 1)
    if layout == "dense_from_conv":
        return value[:, :, 0, 0].T
    if layout == "linear":
        return value.T
    return value


def pair_tensors(model, shapes):
    """([(timm key, our variable, layout)] of every weight of `model`, whether the file's classifier is
    taken), timm's modules paired with our trunk layers in order; a model of other classes keeps its
    own (new) classifier, a backbone leaves the head and deeper blocks out. CheckpointError naming the
    first tensor that does not fit (`problem`), before anything is assigned."""
    ours, theirs = trunk_layers(model), timm_units(shapes)
    backbone = not any(layer.name == "logits" for layer in model.layers)
    if len(ours) > len(theirs) or (len(ours) < len(theirs) and not backbone):
        raise _Mismatch(f"it has {len(theirs)} stem and block modules, this model {len(ours)} trunk layers")
    pairs = [entry for prefix, layer in zip(theirs, ours) for entry in _block_tensors(prefix, layer)]
    head = _head_tensors(model)
    take_classifier = any(key == "classifier.weight" and shapes.get(key) == torch_shape(variable, layout)
                          for key, variable, layout in head)
    pairs += [entry for entry in head if take_classifier or not entry[0].startswith("classifier.")]
    for key, variable, layout in pairs:
        if shapes.get(key) != torch_shape(variable, layout):
            found = "is missing" if key not in shapes else f"is {shapes[key]}"
            raise _Mismatch(f"its {key} {found} where this model has {torch_shape(variable, layout)}")
    expected, used = {key for key, _, _ in pairs}, set(theirs[:len(ours)])
    for key in shapes:
        unit = re.match(r"(blocks\.\d+\.\d+)\.", key)
        if (key in expected or key.endswith("num_batches_tracked")
                or (backbone and unit and unit.group(1) not in used)  # deeper than a backbone's last layer
                or (backbone and key.startswith(("conv_head.", "norm_head.")))  # a head the backbone leaves out
                or key.startswith("classifier.")):  # the backbone's, or one of other classes
            continue
        raise _Mismatch(f"this model has no counterpart of its {key} {shapes[key]}")
    return pairs, take_classifier


class _Mismatch(CheckpointError):
    """A checkpoint whose tensors do not fit the model; `mismatch` words the user's message."""


# ---------------------------------------------------------------- when a file does not fit: what it holds


def _table_signature(name):
    """The kinds of timm modules of our model `name` in call order (as `_file_signature` reads them)."""
    arch = MODELS[name].arch
    kinds = []
    for stage in arch.stages[1:]:
        if stage.block == "conv":
            kind = ("conv", stage.k)
        elif stage.block == "ir":
            kind = ("ir" if stage.expand else "ds", stage.k, stage.se)
        elif stage.block == "uib":
            kind = ("uib", stage.start_dw_k, stage.middle_dw_k)
        elif stage.block == "fused_ib":
            kind = ("fused_ib", stage.k)
        elif stage.block == "mqa":
            kind = ("mqa", stage.kv_stride > 1)
        else:
            kind = (stage.block,)
        kinds += [kind] * stage.n
    if arch.head_conv_expansion:
        kinds.append(("conv", 1))
    return kinds


def _file_signature(shapes):
    def kernel(key):
        return shapes[key][-1] if key in shapes else 0

    kinds = []
    for unit in timm_units(shapes)[1:]:
        has = lambda suffix: f"{unit}.{suffix}" in shapes  # noqa: E731
        if has("attn.query.proj.weight"):
            kinds.append(("mqa", has("attn.key.down_conv.weight")))
        elif has("pw_exp.conv.weight"):
            kinds.append(("uib", kernel(f"{unit}.dw_start.conv.weight"), kernel(f"{unit}.dw_mid.conv.weight")))
        elif has("conv_exp.weight"):
            kinds.append(("fused_ib", kernel(f"{unit}.conv_exp.weight")))
        elif has("conv_pwl.weight"):
            kinds.append(("ir", kernel(f"{unit}.conv_dw.weight"), has("se.conv_reduce.weight")))
        elif has("conv_dw.weight"):
            kinds.append(("ds", kernel(f"{unit}.conv_dw.weight"), has("se.conv_reduce.weight")))
        elif has("conv.weight"):
            kinds.append(("conv", kernel(f"{unit}.conv.weight")))
        else:
            kinds.append(("unknown",))
    return kinds


def _file_width(shapes, name):
    """The width multiplier of the file's `name` weights, from the channels of its last trunk layer (the
    widest the multiplier thins: V4's 960 conv, V3's head conv)."""
    arch = MODELS[name].arch
    last = timm_units(shapes)[-1]
    channels = next(shape[0] for key, shape in shapes.items() if key.startswith(last + ".") and len(shape) == 4)
    full = arch.stages[-1].c * (arch.head_conv_expansion or 1)
    return round(channels / full, 2)


def held_model(shapes):
    """Which of our models a checkpoint's tensors are timm's weights of (by its modules' kinds and kernel
    sizes, in order), None if none."""
    signature = _file_signature(shapes)
    return next((ours for ours in TIMM_ARCHITECTURES if _table_signature(ours) == signature), None)


def mismatch(source, shapes, name, width_multiplier=None, problem=None):
    """The one line saying what the checkpoint holds when it does not fit `name` (at `width_multiplier`;
    `problem`: the first tensor that does not fit, when the model and width are the file's)."""
    held = held_model(shapes)
    if held is None:
        first = next(iter(shapes), "nothing")
        return (f"{source} holds no timm weights of {', '.join(TIMM_ARCHITECTURES)} ({len(shapes)} tensors, the first "
                f"{first!r}); pass timm's model.safetensors of one of them")
    width = _file_width(shapes, held)
    at_width = f" of width {width:g}" if width != 1 else ""
    if held != name:
        flag = f" --width {width:g}" if width != (width_multiplier or 1) else ""
        return f"{source} holds {held} weights{at_width}, not {name}: pass --model {held}{flag}"
    stem = MODELS[held].arch.stages[0].c
    if width < 1 and shapes.get("conv_stem.weight", (0,))[0] == stem and held.startswith("mobilenetv4"):
        return (f"{source} holds {held} weights of width {width:g} with timm's full-width stem ({stem} channels: "
                f"timm's fix_stem below width 1); our MobileNetV4 thins the stem with the width, as the Model "
                f"Garden does, so these weights do not load: use timm's width-1 weights")
    if width_multiplier is not None and width != width_multiplier:
        return (f"{source} holds {name} weights of width {width:g} (read from its shapes), this model has width "
                f"{width_multiplier:g}: add --width {width:g}")
    return (f"{source} holds {name} weights that do not fit this model: {problem or 'their shapes differ'} (build "
            f"it as timm's table has it, or fetch the file again)")


# ---------------------------------------------------------------- loading


def load_timm_weights(model, name, weights, width_multiplier=1.0):
    """Loads the checkpoint `weights` (path, hub id or `Checkpoint`) into `model`, our `name` built with
    the checkpoint's `Settings`; the classifier when the classes match, else the model's own (new).
    Every key and shape is checked first. Returns a one-line description of what was loaded."""
    if name not in TIMM_ARCHITECTURES:
        raise CheckpointError(f"timm has no weights for {name}; timm weights load into {', '.join(TIMM_ARCHITECTURES)}")
    checkpoint = weights if isinstance(weights, Checkpoint) else locate(weights, name)
    _check_architecture(checkpoint.source, checkpoint.architecture, name)
    shapes = tensor_shapes(checkpoint.path)
    try:
        pairs, take_classifier = pair_tensors(model, shapes)
    except _Mismatch as problem:
        raise CheckpointError(mismatch(checkpoint.source, shapes, name, width_multiplier, str(problem))) from None
    tensors = read_tensors(checkpoint.path)
    for key, variable, layout in pairs:
        variable.assign(to_keras(tensors[key], layout))
    what = ".".join(part for part in (checkpoint.architecture or TIMM_ARCHITECTURES[name], checkpoint.tag) if part)
    if not any(layer.name == "logits" for layer in model.layers):
        head = "backbone"
    else:
        head = "with its classifier" if take_classifier else "new classifier"
    return f"timm {what} weights from {checkpoint.source} ({head})"

"""Our MobileNetV4s and MobileNetV3s with timm's weights, against timm itself (issue 23).

    python benchmarks/timm_reference.py [--timm-python /tmp/timm-venv/bin/python] [--models NAME ...]
    python benchmarks/timm_reference.py --fixtures      # rewrites tests/fixtures/timm/

Two processes, so that this repository's environment never holds torch. This script, run by our
Python, runs itself under TIMM_PYTHON (a scratch virtualenv with timm and torch:
python -m venv /tmp/timm-venv && /tmp/timm-venv/bin/pip install torch==2.13.0 timm==1.0.31 safetensors numpy)
with --timm-side, which for each model writes a timm checkpoint of random weights and random
BatchNorm statistics (model.safetensors + config.json, as the hub holds them) and timm's logits and
features_only maps on a few images; then builds ours from each checkpoint
(`build_model(name, weights=FILE)`, and with features_only=True) and compares.

Default: all seven models at full size (1000 classes, the default tag's input size), checkpoints
in a temporary folder; pass: logits within 1e-4 of the largest |logit|, every feature map within
1e-3 of its largest |value|. --fixtures: the small checkpoints tests/test_timm_weights.py loads
(width 0.25, 10 classes, 64x64 images, float16 tensors) with their references.

Random weights: timm's initialization, then BatchNorm gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2), the
layer scales ~ U(0.5, 1.5), every bias ~ N(0, 0.1), and running statistics of a training-mode pass
over the images, moved (mean + N(0, 0.2) std, var x U(0.5, 2)): activations stay O(1) at any
depth, so a wrong key, transpose or epsilon shows in the logits. Images: CIFAR-10 photos
(../shared/data/cifar10_real_5k.npz) resized bilinearly to the input size, raw 0..255 pixels to
ours, timm-normalized to timm.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(REPO, "..", "shared", "data", "cifar10_real_5k.npz")
FIXTURES = os.path.join(REPO, "tests", "fixtures", "timm")
# our model -> timm's architecture (mobilenets.models.timm_weights.TIMM_ARCHITECTURES; not imported on the timm side)
MODELS = {
    "mobilenetv4_conv_small": "mobilenetv4_conv_small",
    "mobilenetv4_conv_medium": "mobilenetv4_conv_medium",
    "mobilenetv4_conv_large": "mobilenetv4_conv_large",
    "mobilenetv4_hybrid_medium": "mobilenetv4_hybrid_medium",
    "mobilenetv4_hybrid_large": "mobilenetv4_hybrid_large",
    "mobilenetv3_large": "mobilenetv3_large_100",
    "mobilenetv3_small": "mobilenetv3_small_100",
}
# The fixtures: every block type and tensor name timm has for these models (ConvBnAct, UIR of all four
# kinds, EdgeResidual, Mobile MQA with and without key/value downsampling, layer scale, DS and IR with SE,
# both heads) in three small checkpoints.
FIXTURE_MODELS = ("mobilenetv4_conv_small", "mobilenetv4_hybrid_medium", "mobilenetv3_small")
FIXTURE = {"width": 0.25, "num_classes": 10, "size": 64, "images": 3, "dtype": "float16"}
FULL = {"width": 1.0, "num_classes": 1000, "size": None, "images": 2, "dtype": "float32"}
LOGIT_TOLERANCE, FEATURE_TOLERANCE = 1e-4, 1e-3


# ---------------------------------------------------------------- the timm side (run under TIMM_PYTHON)


def _import_timm():
    import torch

    # PyPI's torchvision wheels are CUDA builds: with the CPU torch their ops library does not load, and
    # torchvision 0.28 then fails at import registering fake kernels for nms / qnms. Define the two op
    # schemas first; timm uses no torchvision op.
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _import_timm.library = library  # kept alive
    import timm

    return torch, timm


def timm_model(architecture, width, num_classes, features_only=False):
    """timm's model of `architecture` at channel multiplier `width`. Below width 1 timm's
    MobileNetV4 keeps its stem at full width (fix_stem); ours thins it as the Model Garden does,
    so a reduced-width model is built here with the stem thinned too (fix_stem=False)."""
    import timm.models.mobilenetv3 as mnv3

    generate = mnv3._gen_mobilenet_v4 if architecture.startswith("mobilenetv4") else mnv3._gen_mobilenet_v3
    captured, create = {}, mnv3._create_mnv3
    mnv3._create_mnv3 = lambda variant, pretrained=False, **kwargs: captured.update(kwargs)
    try:
        generate(architecture, channel_multiplier=width)
    finally:
        mnv3._create_mnv3 = create
    if architecture.startswith("mobilenetv4"):
        captured["fix_stem"] = False
    return create(architecture, False, num_classes=num_classes, features_only=features_only, **captured)


def randomize(torch, model, images):
    """Random gamma, beta, biases and layer scales; BatchNorm statistics of `images` (a training-mode
    pass), then moved at random (module docstring)."""
    generator = torch.Generator().manual_seed(0)

    def uniform(tensor, low, high):
        tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))

    def normal(tensor, std):
        tensor.copy_(std * torch.randn(tensor.shape, generator=generator))

    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("layer_scale.gamma"):
                uniform(parameter, 0.5, 1.5)
            elif name.endswith(".bias"):
                normal(parameter, 0.1)
        for norm in norms:
            uniform(norm.weight, 0.5, 1.5)
            normal(norm.bias, 0.2)
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: one pass gives the batch statistics
        model.train()
        model(images)
        model.eval()
        for norm in norms:
            noise = torch.empty_like(norm.running_mean)
            normal(noise, 0.2)
            norm.running_mean += noise * norm.running_var.sqrt()
            scale = torch.empty_like(norm.running_var)
            uniform(scale, 0.5, 2.0)
            norm.running_var *= scale
            norm.momentum = 0.1


def resized_images(count, size, seed=0):
    """`count` CIFAR-10 photos resized (bilinear) to size x size, uint8 NHWC."""
    import torch

    with np.load(DATA) as data:
        picks = np.random.default_rng(seed).choice(len(data["x"]), count, replace=False)
        small = torch.tensor(data["x"][picks]).permute(0, 3, 1, 2).float()
    large = torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return large.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def write_timm_side(out, names, settings):
    """For each model: OUT/NAME/model.safetensors, config.json and reference.npz (images, logits, features)."""
    torch, timm = _import_timm()
    from safetensors.torch import save_file
    from timm.models._hub import save_config_for_hf

    torch.set_num_threads(1)
    for name in names:
        architecture = MODELS[name]
        model = timm_model(architecture, settings["width"], settings["num_classes"]).eval()
        size = settings["size"] or model.pretrained_cfg["input_size"][-1]
        pixels = resized_images(settings["images"], size)
        mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
        inputs = (torch.tensor(pixels).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
        randomize(torch, model, inputs)
        dtype = getattr(torch, settings["dtype"])
        state = {key: value.to(dtype) if value.is_floating_point() else value for key, value in model.state_dict().items()}
        model.load_state_dict({key: value.float() if value.is_floating_point() else value for key, value in state.items()})
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        save_file({key: value.contiguous() for key, value in state.items()}, os.path.join(folder, "model.safetensors"),
                  metadata={"format": "pt"})
        model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, size, size),
                                "num_classes": settings["num_classes"]}
        save_config_for_hf(model, os.path.join(folder, "config.json"),
                           model_args={"channel_multiplier": settings["width"], "fix_stem": False}
                           if settings["width"] != 1 else None)
        features = timm_model(architecture, settings["width"], settings["num_classes"], features_only=True).eval()
        missing, _ = features.load_state_dict(model.state_dict(), strict=False)  # the head is not a feature
        assert not missing, missing
        with torch.no_grad():
            logits = model(inputs).numpy()
            maps = [m.permute(0, 2, 3, 1).numpy() for m in features(inputs)]
        np.savez(os.path.join(folder, "reference.npz"), images=pixels, logits=logits,
                 strides=np.array(features.feature_info.reduction()),
                 **{f"feature_{i}": m for i, m in enumerate(maps)})
        print(f"timm {architecture}: {sum(p.numel() for p in model.parameters()):,} parameters, {size}x{size}, "
              f"features {features.feature_info.channels()} at strides {features.feature_info.reduction()}", flush=True)


def write_checkpoints(timm_python, out, names, settings):
    """Runs `write_timm_side` under `timm_python` (a Python with timm and torch; ours never imports torch)."""
    started = time.perf_counter()
    subprocess.run([timm_python, os.path.abspath(__file__), "--timm-side", out, "--models", *names,
                    "--settings", json.dumps(settings)], check=True)
    print(f"timm side: {time.perf_counter() - started:.0f} s")


# ---------------------------------------------------------------- our side


def relative_error(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-12))


def compare(folder, name, width, num_classes):
    """(logits error, [feature map errors], seconds) of ours built from the checkpoint in `folder`."""
    from mobilenets.models.registry import build_model

    weights = os.path.join(folder, "model.safetensors")
    with np.load(os.path.join(folder, "reference.npz")) as reference:
        reference = dict(reference)
    started = time.perf_counter()
    model = build_model(name, num_classes=num_classes, width_multiplier=width, weights=weights)
    logits = model(reference["images"].astype(np.float32), training=False).numpy()
    features = build_model(name, width_multiplier=width, weights=weights, features_only=True)
    maps = features(reference["images"].astype(np.float32), training=False)
    strides = [int(s) for s in reference["strides"]]
    ours = [maps[f"stride_{s}"].numpy() for s in strides]
    feature_errors = [relative_error(o, reference[f"feature_{i}"]) for i, o in enumerate(ours)]
    return relative_error(logits, reference["logits"]), feature_errors, strides, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timm-python", default="/tmp/timm-venv/bin/python")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=None)
    parser.add_argument("--fixtures", action="store_true", help="write tests/fixtures/timm/ (and check it)")
    parser.add_argument("--timm-side", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.timm_side:
        write_timm_side(args.timm_side, args.models, json.loads(args.settings))
        return 0

    settings = FIXTURE if args.fixtures else FULL
    names = args.models or (list(FIXTURE_MODELS) if args.fixtures else list(MODELS))
    with tempfile.TemporaryDirectory() as scratch:
        out = FIXTURES if args.fixtures else scratch
        write_checkpoints(args.timm_python, out, names, settings)
        sys.path.insert(0, REPO)
        failures = 0
        for name in names:
            logits, features, strides, seconds = compare(os.path.join(out, name), name, settings["width"],
                                                         settings["num_classes"])
            ok = logits <= LOGIT_TOLERANCE and all(e <= FEATURE_TOLERANCE for e in features)
            failures += not ok
            maps = ", ".join(f"s{s} {e:.1e}" for s, e in zip(strides, features))
            print(f"{name:26s} width {settings['width']:g}: logits {logits:.1e} of max |logit|, features {maps} "
                  f"({seconds:.0f} s) {'ok' if ok else 'FAIL'}", flush=True)
    if args.fixtures:
        sizes = {name: sum(os.path.getsize(os.path.join(FIXTURES, name, f)) for f in os.listdir(os.path.join(FIXTURES, name)))
                 for name in names}
        print("fixture sizes: " + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items()))
    print(f"{len(names) - failures} of {len(names)} models within {LOGIT_TOLERANCE:g} (logits) and "
          f"{FEATURE_TOLERANCE:g} (features) of timm")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

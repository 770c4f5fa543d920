"""Stand-in backbones that learned something: offline substitutes for ImageNet weights (issue 30).

    python benchmarks/standin_backbone.py            # rewrites tests/fixtures/standin/ (about 5 CPU-minutes)
    python benchmarks/standin_backbone.py --out DIR [--seed 0] [--models mobilenetv2] [--steps N --batch B --lr LR]

No ImageNet weights can be downloaded where the tests run, and a backbone of random weights shows
nothing a fine-tuning does with real ones. This script pretrains two small backbones on GENERATED
images (`draw`) of ten "pretraining" classes, PRETRAIN_CLASSES: stripes varying along 0, 45, 90 and
135 degrees (stripes_0: vertical bars), a checkerboard, a disk, a ring, a plus-shaped cross, a grid
of dots and a smooth colour gradient.
Each image has a random foreground and background colour (so colour alone tells nothing), a random
position, scale, period, phase and small rotation, soft edges and Gaussian pixel noise. It writes:

  mobilenet_v2_0.35_32_no_top.h5     keras.applications MobileNetV2 (alpha 0.35, 32x32) without the
                                     top, laid out as keras.applications' *_no_top.h5 files (tensors
                                     stored float16: half the size; Keras casts them when it loads)
  mobilenetv4_conv_small/model.safetensors + config.json
                                     MobileNetV4-Conv-S at width 0.25, 32x32, in timm's layout and
                                     tensor names (float16, as tests/fixtures/timm/), with its 10-class
                                     classifier; config.json as timm's hub holds it

and loads them back through the real paths (`load_starting_weights`, `build_model(weights=...)`)
to measure the pretraining top-1 on held-out generated images. Written with the defaults (seed 0;
PRETRAINING: MobileNetV2 1600 steps of 64, MobileNetV4 2400 of 32, Adam cosine; 12000 training
images; op determinism on: the same command writes the same bytes), 280-340 CPU-seconds, they
reach, loaded back from the files, on 2000 held-out images of the 10 pretraining classes (chance 10%):

  MobileNetV2 0.35 no-top + the temporary head:  93.6% top-1
  MobileNetV4-Conv-S 0.25 (timm) + its head:     89.7% top-1

NEW_CLASSES (a triangle, a square frame, an X-shaped cross, wavy stripes, a grid of thin lines:
none of them pretrained) are what tests/test_standin_backbone.py fine-tunes on, to show that
starting from a stand-in beats starting from scratch at the same number of steps: 40 training and
40 held-out images a class, the finetune preset for 4 epochs of 12 steps of 16 (2 of the head alone,
then everything), Adam 1e-3; from scratch the same steps at the same rate (3e-3 does no better).
Held-out top-1 (chance 20%), fine-tuned vs from scratch: MobileNetV2 73.0% vs 24.5% (seed 0) and
69.5% vs 23.0% (seed 1); MobileNetV4-Conv-S 63.5% vs 21.5% and 70.5% vs 22.0%.

Starting from them, as from ImageNet's weights:

    python train.py --preset finetune --model mobilenetv2 --width 0.35 --set model.input_size=32 \\
        --weights tests/fixtures/standin/mobilenet_v2_0.35_32_no_top.h5 --data-dir photos/
    python train.py --preset finetune --model mobilenetv4_conv_small --width 0.25 \\
        --weights tests/fixtures/standin/mobilenetv4_conv_small/model.safetensors --data-dir photos/

(the timm checkpoint sets normalization imagenet, bn_epsilon 1e-5, symmetric padding and input
size 32 from its config.json). `save_timm_weights` is the inverse of
mobilenets.models.timm_weights.pair_tensors / to_keras: our Keras variables as timm's tensors.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

OUT = os.path.join(REPO, "tests", "fixtures", "standin")
PRETRAIN_CLASSES = ("stripes_0", "stripes_45", "stripes_90", "stripes_135", "checkerboard", "disk", "ring",
                    "plus_cross", "dots", "gradient")
NEW_CLASSES = ("triangle", "square_frame", "x_cross", "waves", "grid_lines")
SIDE = 32
V2_WIDTH, V4_WIDTH = 0.35, 0.25
V2_FILE = "mobilenet_v2_0.35_32_no_top.h5"
V4_NAME = "mobilenetv4_conv_small"
V4_DIR = V4_NAME  # OUT/mobilenetv4_conv_small/model.safetensors + config.json
# Adam (cosine to 0) of each backbone: MobileNetV2 learns these best at batch 64, MobileNetV4 at 32
PRETRAINING = {"mobilenetv2": {"steps": 1600, "batch": 64, "lr": 3e-3},
               V4_NAME: {"steps": 2400, "batch": 32, "lr": 5e-3}}
NOISE = 12.0  # pixel noise std (0..255)
MIN_CONTRAST = 90.0  # |foreground - background| (Euclidean, RGB 0..255) at least this


# ---------------------------------------------------------------- the images


def _soft(distance, size):
    """Coverage of a pixel by the region distance < 0 (distance in the [-1, 1] image frame): anti-aliased edges."""
    return np.clip(0.5 - distance * size / 2.0, 0.0, 1.0)


def _rotate(u, v, angle):
    c, s = np.cos(angle), np.sin(angle)
    return c * u + s * v, -s * u + c * v


def _box(u, v, half_u, half_v):
    """Signed distance to an axis-aligned rectangle (outside > 0)."""
    du, dv = np.abs(u) - half_u, np.abs(v) - half_v
    outside = np.hypot(np.maximum(du, 0), np.maximum(dv, 0))
    return outside + np.minimum(np.maximum(du, dv), 0)


def _square_wave(phase, sharpness=3.0):
    return np.clip(0.5 + sharpness * np.sin(phase), 0.0, 1.0)


def coverage(kind, rng, size=SIDE):
    """The (size, size) foreground coverage in [0, 1] of one random image of class `kind`."""
    centres = (np.arange(size) + 0.5) / size * 2 - 1
    v, u = np.meshgrid(centres, centres, indexing="ij")  # u right, v down, [-1, 1]
    pixel = 2.0 / size
    cu, cv = rng.uniform(-0.3, 0.3, 2)
    jitter = np.deg2rad(rng.uniform(-8, 8))
    if kind.startswith("stripes_"):
        angle = np.deg2rad(float(kind.split("_")[1])) + jitter
        period = rng.uniform(5, 10) * pixel
        a, _ = _rotate(u, v, angle)
        return _square_wave(2 * np.pi * a / period + rng.uniform(0, 2 * np.pi))
    if kind == "checkerboard":
        period = rng.uniform(7, 13) * pixel
        a, b = _rotate(u, v, jitter)
        phase = rng.uniform(0, 2 * np.pi, 2)
        return np.clip(0.5 + 3 * np.sin(2 * np.pi * a / period + phase[0]) * np.sin(2 * np.pi * b / period + phase[1]),
                       0, 1)
    if kind == "disk":
        return _soft(np.hypot(u - cu, v - cv) - rng.uniform(0.25, 0.55), size)
    if kind == "ring":
        radius, width = rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.18)
        return _soft(np.abs(np.hypot(u - cu, v - cv) - radius) - width / 2, size)
    if kind in ("plus_cross", "x_cross"):
        angle = jitter + (np.pi / 4 if kind == "x_cross" else 0.0)
        a, b = _rotate(u - cu, v - cv, angle)
        arm, half = rng.uniform(0.45, 0.7), rng.uniform(0.08, 0.15)
        return _soft(np.minimum(_box(a, b, arm, half), _box(a, b, half, arm)), size)
    if kind == "dots":
        period = rng.uniform(7, 11) * pixel
        a, b = _rotate(u, v, jitter)
        a = (a + rng.uniform(0, period)) % period - period / 2
        b = (b + rng.uniform(0, period)) % period - period / 2
        return _soft(np.hypot(a, b) - rng.uniform(0.25, 0.35) * period, size)
    if kind == "gradient":
        a, _ = _rotate(u, v, rng.uniform(0, 2 * np.pi))
        return np.clip(0.5 + a * rng.uniform(0.45, 0.8), 0, 1)
    if kind == "triangle":
        radius, angle = rng.uniform(0.4, 0.7), rng.uniform(0, 2 * np.pi)
        distance = np.full_like(u, -np.inf)
        for k in range(3):  # the three edges' half-planes, at distance radius / 2 from the centre
            normal = angle + 2 * np.pi * k / 3
            distance = np.maximum(distance, (u - cu) * np.cos(normal) + (v - cv) * np.sin(normal) - radius / 2)
        return _soft(distance, size)
    if kind == "square_frame":
        a, b = _rotate(u - cu, v - cv, rng.uniform(0, np.pi / 2))
        half, width = rng.uniform(0.35, 0.6), rng.uniform(0.1, 0.18)
        return _soft(np.abs(_box(a, b, half, half)) - width / 2, size)
    if kind == "waves":
        a, b = _rotate(u, v, rng.uniform(0, np.pi))
        period, wavelength = rng.uniform(6, 10) * pixel, rng.uniform(0.6, 1.2)
        bend = rng.uniform(0.12, 0.22) * np.sin(2 * np.pi * b / wavelength + rng.uniform(0, 2 * np.pi))
        return _square_wave(2 * np.pi * (a + bend) / period + rng.uniform(0, 2 * np.pi))
    if kind == "grid_lines":
        period, width = rng.uniform(8, 12) * pixel, rng.uniform(1.3, 2.2) * pixel
        a, b = _rotate(u, v, jitter)
        a = np.abs((a + rng.uniform(0, period)) % period - period / 2)
        b = np.abs((b + rng.uniform(0, period)) % period - period / 2)
        return _soft(np.minimum(a, b) - width / 2, size)
    raise ValueError(f"no class {kind!r}; classes: {', '.join(PRETRAIN_CLASSES + NEW_CLASSES)}")


def _colours(rng):
    """(foreground, background) RGB, uniformly random but at least MIN_CONTRAST apart."""
    while True:
        foreground, background = rng.uniform(0, 255, (2, 3))
        if np.linalg.norm(foreground - background) >= MIN_CONTRAST:
            return foreground, background


def draw(kind, rng, size=SIDE):
    """One uint8 (size, size, 3) image of class `kind`: its shape in random colours, plus noise."""
    mask = coverage(kind, rng, size)[..., None]
    foreground, background = _colours(rng)
    image = background * (1 - mask) + foreground * mask + rng.normal(0, NOISE, (size, size, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def make_images(classes, per_class, seed, size=SIDE):
    """(x uint8 (N, size, size, 3), y int64 (N,)): `per_class` images of each of `classes` (labels
    0..len(classes)-1 in that order), classes in turn, all from numpy's generator seeded `seed`."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(len(classes)), per_class)
    x = np.stack([draw(classes[label], rng, size) for label in y])
    return x, y.astype(np.int64)


# ---------------------------------------------------------------- timm's layout (the inverse of timm_weights)

# timm's arch_def rows of the architecture (timm/models/mobilenetv3.py): how its blocks.{stage}.{block}
# group our trunk's layers after the stem, in order (as tests/fixtures/timm/ holds them).
TIMM_STAGE_SIZES = {"mobilenetv4_conv_small": (2, 2, 6, 6, 1)}
TIMM_MEAN, TIMM_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # timm's ImageNet mean / std: normalization imagenet


def timm_units(name):
    """timm's module prefixes of our trunk layers in call order: '' (the stem), 'blocks.S.B'."""
    return [""] + [f"blocks.{stage}.{block}" for stage, count in enumerate(TIMM_STAGE_SIZES[name])
                   for block in range(count)]


def to_torch(value, layout):
    """Our variable's value in PyTorch's layout: the inverse of timm_weights.to_keras."""
    if layout == "conv":  # HWIO -> OIHW
        return value.transpose(3, 2, 0, 1)
    if layout == "depthwise":  # (kh, kw, C, 1) -> (C, 1, kh, kw)
        return value.transpose(2, 3, 0, 1)
    if layout == "dense_from_conv":  # (in, out) -> (out, in, 1, 1)
        return value.T[:, :, None, None]
    if layout == "linear":  # (in, out) -> (out, in)
        return value.T
    return value


def save_timm_weights(model, path, name=V4_NAME, dtype=np.float16, batches_tracked=0):
    """Writes `model` (our `name`, built as timm's checkpoints are: timm_weights.checkpoint_settings)
    as timm's model.safetensors: every weight under timm's tensor name in PyTorch's layout (the
    pairing timm_weights.pair_tensors reads, run backwards), float tensors as `dtype`, and each
    BatchNorm's num_batches_tracked as timm's state_dict has it. Checked with pair_tensors before
    anything is written. Returns {key: array} as written."""
    from safetensors.numpy import save_file

    from mobilenets.models import timm_weights

    units, trunk = timm_units(name), timm_weights.trunk_layers(model)
    if len(units) != len(trunk):
        raise ValueError(f"{model.name} has {len(trunk)} trunk layers, timm's {name} {len(units)}")
    pairs = [entry for prefix, layer in zip(units, trunk) for entry in timm_weights._block_tensors(prefix, layer)]
    pairs += timm_weights._head_tensors(model)
    tensors = {key: np.ascontiguousarray(to_torch(variable.numpy(), layout).astype(dtype))
               for key, variable, layout in pairs}
    for key in [k for k in tensors if k.endswith(".running_mean")]:
        tensors[key[:-len("running_mean")] + "num_batches_tracked"] = np.array(batches_tracked, np.int64)
    written, _ = timm_weights.pair_tensors(model, {key: value.shape for key, value in tensors.items()})
    assert len(written) == len(pairs) == len(model.weights), (len(written), len(pairs), len(model.weights))
    save_file(dict(sorted(tensors.items())), path, metadata={"format": "pt"})
    os.chmod(path, 0o644)  # safetensors writes 0600
    return tensors


def timm_config(name, width, num_classes, side, label_names, tag):
    """config.json as timm's hub holds it (timm's save_config_for_hf; tests/fixtures/timm/*/config.json)."""
    return {
        "architecture": name, "num_classes": num_classes, "num_features": int(960 * width), "global_pool": "avg",
        "model_args": {"channel_multiplier": width, "fix_stem": False, "in_chans": 3, "num_classes": num_classes,
                       "global_pool": "avg"},
        "pretrained_cfg": {"tag": tag, "custom_load": False, "input_size": [3, side, side],
                           "test_input_size": [3, side, side], "fixed_input_size": False, "interpolation": "bicubic",
                           "crop_pct": 1.0, "test_crop_pct": 1.0, "crop_mode": "center", "mean": list(TIMM_MEAN),
                           "std": list(TIMM_STD), "num_classes": num_classes, "pool_size": [side // 32, side // 32],
                           "first_conv": "conv_stem", "classifier": "classifier", "license": "apache-2.0"},
        "label_names": list(label_names),
    }


# ---------------------------------------------------------------- keras.applications' layout


def save_h5_weights(model, path, dtype=np.float16):
    """model.save_weights(path) (Keras' .h5 layout: a group per layer, attrs layer_names / weight_names),
    float tensors stored as `dtype`; Keras casts them back to the variables' float32 when it loads."""
    import h5py

    scratch = path + ".float32"
    model.save_weights(scratch, save_format="h5")

    def group(parent, key):  # without modification times, so that the same weights give the same bytes
        properties = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        properties.set_obj_track_times(False)
        return h5py.Group(h5py.h5g.create(parent.id, key.encode(), gcpl=properties))

    def copy(source, target):
        for key, value in source.attrs.items():
            target.attrs[key] = value
        for key, item in source.items():
            if isinstance(item, h5py.Group):
                copy(item, group(target, key))
            else:
                data = item[()]
                dataset = target.create_dataset(key, data=data.astype(dtype) if data.dtype.kind == "f" else data,
                                                track_times=False)
                for attr, value in item.attrs.items():
                    dataset.attrs[attr] = value

    try:
        access = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        access.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)  # compact groups: smaller
        creation = h5py.h5p.create(h5py.h5p.FILE_CREATE)
        creation.set_obj_track_times(False)
        with h5py.File(scratch, "r") as source, h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC,
                                                                          fapl=access, fcpl=creation)) as target:
            copy(source, target)
    finally:
        os.remove(scratch)


# ---------------------------------------------------------------- pretraining


def _deterministic(seed):
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def fit(model, x, y, steps, batch, lr, seed, log):
    """Plain Keras: Adam at `lr`, cosine decay to 0 over `steps` steps of `batch` (x cycled, reshuffled
    each pass), raw 0..255 pixels in, logits out; then precise BatchNorm statistics (the average over
    16 training batches, mobilenets.training.precise_bn) for the weights reached."""
    import tensorflow as tf
    import tf_keras as keras

    from mobilenets.training.precise_bn import BatchNormStatistics

    _deterministic(seed)
    schedule = keras.optimizers.schedules.CosineDecay(lr, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    per_pass = len(x) // batch
    passes = -(-steps // per_pass)
    started = time.process_time()
    for index in range(passes):
        count = min(per_pass, steps - index * per_pass)
        history = model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=count, shuffle=True, verbose=0)
        log(f"  pass {index + 1}/{passes}: {count} steps, loss {history.history['loss'][-1]:.3f}, training top-1 "
            f"{history.history['accuracy'][-1]:.3f} ({time.process_time() - started:.0f} CPU-s)")
    order = np.random.default_rng(seed).permutation(len(x))[:16 * batch]
    BatchNormStatistics(model).recompute(tf.data.Dataset.from_tensor_slices(x[order].astype(np.float32)).batch(batch))
    return model


def top1(model, x, y, batch=250):
    logits = np.concatenate([model(x[i:i + batch].astype(np.float32), training=False).numpy()
                             for i in range(0, len(x), batch)])
    return float(np.mean(np.argmax(logits, -1) == y))


def pretrain_mobilenetv2(data, held_out, out, args, log):
    """keras.applications MobileNetV2 (no top) + a temporary pooling and 10-class head, trained;
    the backbone written as a *_no_top.h5, then loaded into our mobilenetv2 through
    load_starting_weights (the train.py path) and measured with the temporary head."""
    import tf_keras as keras

    from mobilenets.models.pretrained import keras_application
    from mobilenets.models.registry import build_model
    from mobilenets.training.starting_weights import load_starting_weights

    _deterministic(args.seed)
    backbone = keras_application("mobilenetv2", V2_WIDTH, (SIDE, SIDE, 3), include_top=False)
    inputs = keras.Input((SIDE, SIDE, 3))
    features = backbone(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs))  # keras.applications' input
    logits = keras.layers.Dense(len(PRETRAIN_CLASSES), name="head")(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, logits)
    log(f"MobileNetV2 {V2_WIDTH:g} no-top ({backbone.count_params():,} parameters) + temporary head, "
        f"{args.steps} steps of {args.batch}")
    fit(model, *data, args.steps, args.batch, args.lr, args.seed, log)
    path = os.path.join(out, V2_FILE)
    save_h5_weights(backbone, path)
    ours = build_model("mobilenetv2", num_classes=len(PRETRAIN_CLASSES), input_shape=(SIDE, SIDE, 3),
                       width_multiplier=V2_WIDTH)
    load_starting_weights(ours, "mobilenetv2", path, V2_WIDTH, (SIDE, SIDE, 3), len(PRETRAIN_CLASSES))
    ours.get_layer("logits").set_weights(model.get_layer("head").get_weights())
    return path, top1(model, *held_out), top1(ours, *held_out)


def pretrain_mobilenetv4(data, held_out, out, args, log):
    """Our MobileNetV4-Conv-S built as timm's checkpoints are (imagenet normalization, BatchNorm
    epsilon 1e-5, symmetric padding) with a 10-class classifier, trained; written in timm's layout
    and loaded back with build_model(weights=...) (classifier included: the classes match)."""
    from mobilenets.models import timm_weights
    from mobilenets.models.registry import build_model

    _deterministic(args.seed)
    model = build_model(V4_NAME, num_classes=len(PRETRAIN_CLASSES), input_shape=(SIDE, SIDE, 3),
                        width_multiplier=V4_WIDTH, normalization="imagenet", bn_epsilon=timm_weights.BN_EPSILON,
                        padding=timm_weights.PADDING)
    log(f"{V4_NAME} {V4_WIDTH:g} ({model.count_params():,} parameters), {args.steps} steps of {args.batch}")
    fit(model, *data, args.steps, args.batch, args.lr, args.seed, log)
    folder = os.path.join(out, V4_DIR)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, timm_weights.WEIGHTS_FILE)
    save_timm_weights(model, path, batches_tracked=args.steps)
    config = timm_config(V4_NAME, V4_WIDTH, len(PRETRAIN_CLASSES), SIDE, PRETRAIN_CLASSES,
                         f"standin_shapes{len(PRETRAIN_CLASSES)}_r{SIDE}")
    with open(os.path.join(folder, timm_weights.CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    loaded = build_model(V4_NAME, num_classes=len(PRETRAIN_CLASSES), width_multiplier=V4_WIDTH, weights=path)
    return path, top1(model, *held_out), top1(loaded, *held_out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=OUT, help="where the fixtures go (default tests/fixtures/standin/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="training steps of each backbone (default: PRETRAINING's)")
    parser.add_argument("--batch", type=int, help="batch size (default: PRETRAINING's)")
    parser.add_argument("--lr", type=float, help="Adam's peak learning rate, cosine to 0 (default: PRETRAINING's)")
    parser.add_argument("--per-class", type=int, default=1200, help="generated training images per class")
    parser.add_argument("--models", nargs="+", choices=("mobilenetv2", V4_NAME), default=("mobilenetv2", V4_NAME))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(args.out, exist_ok=True)
    started = time.process_time()
    data = make_images(PRETRAIN_CLASSES, args.per_class, seed=args.seed)
    held_out = make_images(PRETRAIN_CLASSES, 200, seed=args.seed + 1_000_003)
    print(f"{len(data[0])} training and {len(held_out[0])} held-out {SIDE}x{SIDE} images of {len(PRETRAIN_CLASSES)} "
          f"classes: {', '.join(PRETRAIN_CLASSES)}", flush=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    steps = {"mobilenetv2": pretrain_mobilenetv2, V4_NAME: pretrain_mobilenetv4}
    for name in args.models:
        settings = argparse.Namespace(**vars(args))
        for key, value in PRETRAINING[name].items():  # what the command does not set
            if getattr(settings, key) is None:
                setattr(settings, key, value)
        path, trained, loaded = steps[name](data, held_out, args.out, settings, log)
        print(f"{name}: held-out top-1 {trained:.4f} trained, {loaded:.4f} loaded from {os.path.relpath(path)} "
              f"({os.path.getsize(path) / 1e6:.2f} MB)", flush=True)
    print(f"{time.process_time() - started:.0f} CPU-seconds")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training speed in the trainer's Keras `fit` loop: our MobileNetV2 against its keras.applications
twin, and the learned-group-conv MobileNetV2 against the dense one.

    python benchmarks/train_speed.py [--width 1.0] [--size 224] [--batch 32] [--rounds 4] [--steps 5] [--json out.json]

Every model is wrapped in the trainer's `Classifier` (same loss, SGD with Nesterov momentum, one
`fit` loop) and fed one in-memory batch, so only the train step is timed. The models of a pair
are timed in alternating rounds (A B A B ...) after a warm-up that traces and runs each once, so
load from other processes falls on both alike; the figure is the median step time. The twin,
`mobilenets.models.pretrained.keras_application`, takes [-1, 1] inputs: a Rescaling layer in front
gives it our raw [0, 255] pixels (our models normalise in their first layer).

Acceptance: ours >= 0.95x the twin's images/s (ImageNet shape), and the LGC model's step
(CIFAR shape, the seed's batch 64, group lasso on) <= 1.2x the dense model's.
"""

import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mobilenets.io import write_json  # noqa: E402
from mobilenets.models.pretrained import keras_application  # noqa: E402
from mobilenets.models.registry import build_model  # noqa: E402
from mobilenets.training import Classifier  # noqa: E402

MIN_RATIO_TO_KERAS = 0.95
MAX_LGC_STEP_RATIO = 1.2


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def twin_with_raw_pixels(width, size, num_classes):
    """keras.applications MobileNetV2 taking raw [0, 255] pixels, like ours."""
    inputs = keras.Input((size, size, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    return keras.Model(inputs, keras_application("mobilenetv2", width, (size, size, 3), num_classes)(scaled))


def trainable(network, lasso_decay=0.0):
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)
    return Classifier(network, weight_decay=4e-5, lasso_decay=lasso_decay).compile_objective(optimizer)


def time_pair(models, batch, size, num_classes, rounds, steps):
    """Median seconds per step of each model, timed in alternating rounds."""
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, num_classes, batch), tf.int32)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    timers = {name: StepTimer() for name in models}
    for model in models.values():  # warm-up: trace and run twice
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    for _ in range(rounds):
        for name, model in models.items():
            model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timers[name]])
    return {name: float(np.median(timer.seconds)) for name, timer in timers.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=224, help="ImageNet-shape input side for the keras twin")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lgc-batch", type=int, default=64, help="CIFAR batch for the LGC comparison (the seed's)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    classes = 1000
    keras.utils.set_random_seed(0)
    imagenet = time_pair({
        "ours": trainable(build_model("mobilenetv2", classes, (args.size, args.size, 3), args.width)),
        "keras_applications": trainable(twin_with_raw_pixels(args.width, args.size, classes)),
    }, args.batch, args.size, classes, args.rounds, args.steps)

    cifar = dict(num_classes=100, input_shape=(32, 32, 3), width_multiplier=args.width, config="cifar")
    lgc = time_pair({
        "dense": trainable(build_model("mobilenetv2", **cifar)),
        "lgc": trainable(build_model("mobilenetv2_lgc", groups=4, condense_factor=4, **cifar), lasso_decay=1e-5),
    }, args.lgc_batch, 32, 100, args.rounds, args.steps)

    report = {
        "imagenet_shape": {"width": args.width, "size": args.size, "batch": args.batch,
                           "ours_images_per_s": args.batch / imagenet["ours"],
                           "keras_images_per_s": args.batch / imagenet["keras_applications"],
                           "ratio": imagenet["keras_applications"] / imagenet["ours"]},
        "lgc": {"width": args.width, "batch": args.lgc_batch, "dense_step_s": lgc["dense"], "lgc_step_s": lgc["lgc"],
                "step_ratio": lgc["lgc"] / lgc["dense"]},
    }
    i, g = report["imagenet_shape"], report["lgc"]
    print(f"MobileNetV2 {args.width} at {args.size}x{args.size}, batch {args.batch}: ours {i['ours_images_per_s']:.1f} "
          f"images/s, keras.applications {i['keras_images_per_s']:.1f} images/s, ratio {i['ratio']:.3f} "
          f"(need >= {MIN_RATIO_TO_KERAS})")
    print(f"CIFAR MobileNetV2 {args.width}, batch {args.lgc_batch}: dense {g['dense_step_s'] * 1e3:.0f} ms/step, "
          f"LGC {g['lgc_step_s'] * 1e3:.0f} ms/step, ratio {g['step_ratio']:.3f} (need <= {MAX_LGC_STEP_RATIO})")
    ok = i["ratio"] >= MIN_RATIO_TO_KERAS and g["step_ratio"] <= MAX_LGC_STEP_RATIO
    print("PASS" if ok else "FAIL")
    if args.json:
        write_json(args.json, report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

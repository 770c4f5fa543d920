"""Training-speed cost of the weight EMA (regularization.ema_decay, mobilenets/training/ema.py).

    python benchmarks/ema_overhead.py [--model mobilenetv2] [--width 0.5] [--config cifar] [--size 32]
                                      [--batch 64] [--rounds 5] [--steps 10] [--json out.json]

One network in the trainer's `Classifier` (SGD, Nesterov), fed one in-memory batch, trained by
`fit` in rounds of --steps steps, alternately without and with the EMA callback (the trainer's
AverageWeights: one tf.function after every step averaging the trainable weights and BatchNorm
statistics), after a warm-up round of each that traces them. Reported: the median seconds per
step of each and their ratio, and the EMA update alone (median over the timed steps).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mobilenets.io import write_json  # noqa: E402
from mobilenets.models.registry import build_model  # noqa: E402
from mobilenets.training import Classifier  # noqa: E402
from mobilenets.training.ema import AverageWeights, WeightAverage  # noqa: E402


class TimedAverage(AverageWeights):
    def __init__(self, ema):
        super().__init__(ema)
        self.seconds = []

    def on_train_batch_end(self, batch, logs=None):
        start = time.perf_counter()
        super().on_train_batch_end(batch, logs)
        self.seconds.append(time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--config", default="cifar")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    kwargs = dict(name=args.model, num_classes=10, input_shape=(args.size, args.size, 3),
                  width_multiplier=args.width, config=args.config)
    network = build_model(**kwargs)
    ema = WeightAverage(network, build_model(**kwargs), 0.9998)
    classifier = Classifier(network, weight_decay=4e-5)
    classifier.compile_objective(keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32)
    labels = rng.integers(0, 10, args.batch)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat().prefetch(2)
    timed = TimedAverage(ema)

    def round_seconds(callbacks, steps):
        start = time.perf_counter()
        classifier.fit(data, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=0)
        return (time.perf_counter() - start) / steps

    round_seconds([], 2)
    round_seconds([timed], 2)  # warm-up: traces the train step and the EMA update
    timed.seconds.clear()
    plain, averaged = [], []
    for _ in range(args.rounds):
        plain.append(round_seconds([], args.steps))
        averaged.append(round_seconds([timed], args.steps))
    report = {
        "model": f"{args.model} {args.width} ({args.config}, {args.size}x{args.size}), batch {args.batch}",
        "averaged_variables": len(ema.averaged),
        "step_seconds_without_ema": float(np.median(plain)),
        "step_seconds_with_ema": float(np.median(averaged)),
        "ratio": float(np.median(averaged) / np.median(plain)),
        "ema_update_seconds": float(np.median(timed.seconds)),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

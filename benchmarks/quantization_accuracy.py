"""Does quantization keep a trained model's answers? int8 and QAT .tflite vs the float Keras model on real images.

    python benchmarks/quantization_accuracy.py                       # ../shared/data/cifar10_real_5k.npz
    python benchmarks/quantization_accuracy.py --models mobilenetv2 mobilenetv3_small igcv3 --epochs 5

Trains each model (CIFAR config, 32x32) for a few epochs on the training part
of a real-image .npz (x uint8 (N, 32, 32, 3), y labels; the `npz` pipeline
holds out 15% for validation), exports it with `mobilenets.deploy.export.export`
in float32, int8 (calibrated on training images) and qat, and prints, on the
held-out images: top-1 accuracy of each, and top-1 agreement of each .tflite
with the float Keras model (the acceptance bound is 97%).

Measured on the 30-epoch MobileNetV2-CIFAR 0.5 run of benchmarks/train_cifar_real.py
(--run-dirs RUN --modes none float16 int8 qat, 200 calibration images, QAT 1 epoch at lr 1e-5
with distillation from the float model; 763 held-out images):

    model               mode     top-1   agreement with float Keras
    keras float                  73.9%   100.0%
    mobilenetv2 0.5     none     73.9%   100.0%  (max |logit diff| 1.8e-5)
    mobilenetv2 0.5     float16  73.9%   100.0%  (max |logit diff| 0.029)
    mobilenetv2 0.5     int8     73.5%    97.6%
    mobilenetv2 0.5     qat      74.2%    97.2%

Briefly trained thin models (the defaults: width 0.35, 15 epochs of Adam) keep
their top-1 within a point but agree less (93-97%): a tenth of their images lie
within 0.1 of a tie, and 8-bit activation noise flips those.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10_real_5k.npz")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help=".npz with x (N, 32, 32, 3) uint8 and y")
    parser.add_argument("--models", nargs="+", default=["mobilenetv2", "mobilenetv3_small"])
    parser.add_argument("--run-dirs", nargs="+", default=None, metavar="RUN_DIR",
                        help="use the best checkpoints of these trained runs (on the same .npz) instead of training")
    parser.add_argument("--calibration-images", type=int, default=200)
    parser.add_argument("--width-multiplier", type=float, default=0.35)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--modes", nargs="+", default=["none", "int8", "qat"])
    parser.add_argument("--qat-epochs", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def train(name, args):
    import tf_keras as keras

    from mobilenets import build_model
    from mobilenets.data import make_dataset

    model = build_model(
        name, num_classes=10, config="cifar", width_multiplier=args.width_multiplier, normalization="cifar10",
        bn_momentum=0.9,  # moving statistics that keep up with a short run
    )
    batches = make_dataset("npz", "train", args.batch_size, training=True, data_dir=args.data)
    steps = args.epochs * sum(1 for _ in batches)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(batches, epochs=args.epochs, verbose=0)
    return model


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from mobilenets.data import make_dataset
    from mobilenets.deploy.runtime import TFLitePredictor
    from mobilenets.deploy.export import export
    from mobilenets.runs import load_run

    validation = list(make_dataset("npz", "validation", 1000, training=False, data_dir=args.data).as_numpy_iterator())
    images = np.concatenate([x for x, _ in validation])
    labels = np.concatenate([y for _, y in validation])
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name in args.run_dirs or args.models:
            start = time.time()
            model = load_run(name, "best") if args.run_dirs else train(name, args)
            float_logits = model.predict(images, batch_size=250, verbose=0)
            trained = time.time() - start
            accuracy = float((float_logits.argmax(-1) == labels).mean())
            rows.append((name, "keras float", accuracy, 1.0, f"{trained:.0f}s train"))
            for mode in args.modes:
                start = time.time()
                report = export(
                    model,
                    os.path.join(directory, f"{os.path.basename(name)}_{mode}.tflite"),
                    quantize=mode,
                    representative_data="npz",
                    data_dir=args.data,
                    qat_epochs=args.qat_epochs,
                    calibration_images=args.calibration_images,
                    threads=args.threads,
                )
                logits = TFLitePredictor(report.output, args.threads).predict(images)
                accuracy = float((logits.argmax(-1) == labels).mean())
                agreement = float((logits.argmax(-1) == float_logits.argmax(-1)).mean())
                note = f"{time.time() - start:.0f}s export, max|diff| {np.abs(logits - float_logits).max():.3g}"
                rows.append((name, mode, accuracy, agreement, note))
                print(*rows[-1], flush=True)
    data = os.path.basename(args.data)
    trained = "the runs' best checkpoints" if args.run_dirs else f"{args.epochs} epochs, width {args.width_multiplier}"
    print(f"\n{len(images)} held-out images of {data}, {trained}")
    print(f"{'model':<20} {'mode':<12} {'top-1':>7} {'agree':>7}  note")
    for name, mode, accuracy, agreement, note in rows:
        print(f"{name:<20} {mode:<12} {accuracy:>7.1%} {agreement:>7.1%}  {note}")


if __name__ == "__main__":
    main()

"""Exports a model to a .tflite file for phones, checks it against Keras and times it.

    python export_tflite.py runs/v2_cifar --quantize int8 --output v2_int8.tflite
    python export_tflite.py runs/v2_cifar --quantize qat --qat-epochs 1 --representative-data cifar10
    python export_tflite.py model.keras --quantize float16
    python export_tflite.py mobilenetv2 --quantize int8 --representative-data synthetic --threads 4
    python export_tflite.py mobilenetv2 --weights imagenet --quantize none
    python export_tflite.py runs/v2_cifar --quantize int8 --uint8-io --labels labels.txt   # MediaPipe, uint8 I/O
    python export_tflite.py mobilenetv3_large --weights imagenet --features-only   # a backbone: strides 2..32
    python export_tflite.py runs/v2_cifar --features-only --out-indices 1 2 --quantize int8

RUN_DIR_OR_MODEL: a training run directory (or checkpoint prefix), a saved
Keras model (.keras, .h5, SavedModel directory) or a registered model name
(random init, or --weights imagenet|PATH). Writes OUTPUT, with the standard
TFLite metadata MediaPipe Tasks' ImageClassifier reads (RGB input, normalization,
labels packed) and probabilities out (--logits: raw logits), and OUTPUT.json
(input size, pixel range, mean/std, labels, quantization, the report), then
prints the parity check (Keras vs TFLite), file size, LiteRT latency and the
metadata, and a one-line warning when a quantized file agrees with Keras on top-1
for under 90% of the parity images (--min-agreement refuses it instead) or the
model answers one class for most of them.
A learned-group-conv model is exported in its converted, gather-free form
(--keep-masks: the masked one). --features-only / --no-top export the model (or the
run's model) as a backbone: feature maps out, named stride_2 ... stride_32, and no
classification metadata. All behaviour lives in mobilenets/deploy/export.py.
"""

import argparse
import os
import sys

from hparams.config import DATASET_NUM_CLASSES
from mobilenets.commands import cli
from mobilenets.commands.cli import positive_int
from mobilenets.deploy import MODES


def images_to_read(text):
    """argparse type of --representative-data: a dataset name or a .npz file."""
    if text.endswith(".npz") or text.lower() in DATASET_NUM_CLASSES:
        return text
    raise argparse.ArgumentTypeError(f"must be a dataset name ({', '.join(DATASET_NUM_CLASSES)}) or a .npz file, "
                                     f"got {text!r}")


def parse_args(argv=None):
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("source", metavar="RUN_DIR_OR_MODEL", help="run directory, saved Keras model or model name")
    parser.add_argument("--quantize", default="none", choices=MODES,
                        help="none (float32, default), float16, dynamic, int8 or qat")
    parser.add_argument("--output", "-o", default=None, help="default: <source name>_<quantize>.tflite here")
    parser.add_argument(
        "--representative-data",
        default=None,
        type=images_to_read,
        metavar="DATASET_OR_NPZ",
        help="calibration / QAT / parity images: a dataset name (cifar10, imagenet, synthetic...) or a .npz with x "
        "(N, H, W, 3) uint8; default: the run's dataset",
    )
    parser.add_argument("--data-dir", default=None, help="where the --representative-data dataset is")
    parser.add_argument(
        "--int8-io", action="store_true", help="int8 input and output tensors (int8 and qat; MediaPipe refuses int8)"
    )
    parser.add_argument(
        "--uint8-io", action="store_true",
        help="uint8 input (the pixels as they are) and output tensors (int8 and qat): what MediaPipe takes",
    )
    parser.add_argument("--logits", action="store_true", help="output raw logits instead of probabilities (softmax)")
    parser.add_argument("--calibration-images", type=positive_int, default=200)
    parser.add_argument("--parity-images", type=positive_int, default=32)
    parser.add_argument(
        "--min-agreement", type=float, default=None,
        help="refuse a quantized file (nothing written) whose top-1 agreement with the Keras model on the parity "
        "images is below this (0..1); without it, under 0.9 is a one-line warning",
    )
    parser.add_argument("--qat-epochs", type=float, default=None, help="QAT fine-tuning epochs (default 1)")
    parser.add_argument("--qat-steps", type=positive_int, default=None, help="QAT fine-tuning steps (overrides epochs)")
    parser.add_argument("--qat-batch-size", type=positive_int, default=32)
    parser.add_argument("--qat-learning-rate", type=float, default=1e-5)
    parser.add_argument("--threads", type=positive_int, default=1, help="LiteRT interpreter threads (default 1)")
    parser.add_argument("--latency-runs", type=positive_int, default=50, help="timed invokes after warm-up")
    parser.add_argument(
        "--labels", default=None,
        help="text file of class names, one per line (default: the run's dataset's, else class_N)",
    )
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint of a run")
    parser.add_argument(
        "--keep-masks", action="store_true",
        help="export a learned-group-conv model as its masked dense form (default: converted, gather-free)",
    )
    backbone = parser.add_argument_group("as a backbone (a model name or a run)")
    backbone.add_argument("--features-only", action="store_true",
                          help="feature maps at strides 2, 4, 8, 16, 32 (CIFAR config: 1, 2, 4), as timm's")
    backbone.add_argument("--out-indices", type=int, nargs="+", default=None, metavar="I",
                          help="which feature maps (indices into the strides; default: all)")
    backbone.add_argument("--no-top", action="store_true",
                          help="everything before global pooling, as keras.applications' include_top=False")
    backbone.add_argument("--pooling", choices=("avg", "max"), default=None, help="with --no-top: pool to a vector")
    model = parser.add_argument_group("for a model name")
    model.add_argument("--weights", default=None, help="imagenet or a keras.applications weights file")
    model.add_argument("--num-classes", type=positive_int, default=1000)
    model.add_argument("--width-multiplier", type=float, default=1.0)
    model.add_argument("--input-size", type=positive_int, default=None, help="square input side (default: the config's)")
    model.add_argument("--config", choices=("imagenet", "cifar"), default="imagenet")
    return parser.parse_args(argv)


def default_output(source, quantize):
    name = os.path.splitext(os.path.basename(os.path.normpath(source)))[0]
    return f"{name}_{'float32' if quantize == 'none' else quantize}.tflite"


def main(argv=None):
    args = parse_args(argv)
    try:
        return cli.run(lambda: export_and_print(args))
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


def export_and_print(args):
    """Exports as `args` say, the converter's and LiteRT's own stderr lines held back; prints the report."""
    progress = cli.terminal_progress()
    if progress:
        progress("loading TensorFlow")
    export = cli.import_quietly("mobilenets.deploy.export")
    quantization = export.QuantizationSettings(
        quantize=args.quantize,
        representative_data=args.representative_data,
        data_dir=args.data_dir,
        calibration_images=args.calibration_images,
        int8_io=args.int8_io,
        uint8_io=args.uint8_io,
        qat_steps=args.qat_steps,
        qat_epochs=args.qat_epochs,
        qat_batch_size=args.qat_batch_size,
        qat_learning_rate=args.qat_learning_rate,
    )
    checks = export.CheckSettings(parity_images=args.parity_images, min_agreement=args.min_agreement,
                                  threads=args.threads, latency_runs=args.latency_runs)
    backbone = {"features_only": args.features_only, "out_indices": args.out_indices, "pooling": args.pooling,
                "include_top": not args.no_top}
    with cli.held_stderr():
        report = export.export(
            args.source,
            args.output or default_output(args.source, args.quantize),
            quantization,
            checks,
            labels=args.labels,
            logits=args.logits,
            keep_masks=args.keep_masks,
            which=args.checkpoint,
            weights=args.weights,
            num_classes=args.num_classes,
            width_multiplier=args.width_multiplier,
            input_shape=(args.input_size, args.input_size, 3) if args.input_size else None,
            config=args.config,
            progress=progress,
            **backbone,
        )
    print(export.format_report(report))


if __name__ == "__main__":
    sys.exit(main())

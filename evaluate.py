"""Evaluates a training run, a saved Keras model or a .tflite file on a dataset.

    python evaluate.py runs/v2_lgc --dataset cifar100 --data-dir ~/data/cifar-100
    python evaluate.py runs/v2_lgc --dataset cifar100 --data-dir ~/data/cifar-100 --convert
    python evaluate.py runs/v2_lgc/converted.keras --dataset cifar100 --data-dir ~/data/cifar-100
    python evaluate.py model.tflite --dataset cifar100 --data-dir ~/data/cifar-100 --num-threads 4 --json report.json

Prints top-1, top-5, loss, the number of images, parameters, multiply-adds and,
for a .tflite, the latency per image and its standard metadata (input size,
normalization, output and its quantization, labels; `python -m mobilenets.inspect`
prints it without evaluating). A .tflite that outputs probabilities (our
default export) is scored with log p as its logits. --convert turns a learned-group-conv
model into standard group convolutions (CondenseNet's test-time form), evaluates
that and saves it. All behaviour lives in mobilenets/evaluation.py.
"""

import argparse
import sys

from mobilenets import cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "model", help="run directory, checkpoint prefix, .keras/.h5 file, SavedModel directory or .tflite file"
    )
    parser.add_argument("--dataset", required=True, help="cifar10, cifar100, imagenet, folder, npz or synthetic")
    parser.add_argument("--data-dir", default=None, help="where the dataset is (see mobilenets.data)")
    parser.add_argument("--split", default="validation", help="default: validation (CIFAR: its test set)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=None, help="default: the dataset's")
    parser.add_argument("--max-images", type=int, default=None, help="stop after this many images")
    parser.add_argument(
        "--checkpoint", choices=("best", "last"), default="best", help="which checkpoint of a run (default: best)"
    )
    parser.add_argument(
        "--convert", action="store_true", help="convert learned group convs to standard group convs, evaluate, save"
    )
    parser.add_argument("--output", default=None, help="where --convert saves (.keras, .h5 or a SavedModel directory)")
    parser.add_argument(
        "--condense-remaining", action="store_true", help="with --convert: run condensation stages training did not"
    )
    parser.add_argument("--num-threads", type=int, default=None, help=".tflite interpreter threads")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    evaluation = cli.import_quietly("mobilenets.evaluation")

    def evaluate_and_print():
        report = evaluation.evaluate_path(
            args.model,
            args.dataset,
            data_dir=args.data_dir,
            split=args.split,
            batch_size=args.batch_size,
            image_size=args.image_size,
            which=args.checkpoint,
            convert=args.convert,
            output=args.output,
            condense_remaining=args.condense_remaining,
            num_threads=args.num_threads,
            max_images=args.max_images,
            json_path=args.json,
        )
        print(evaluation.format_report(report))

    return cli.run(evaluate_and_print)


if __name__ == "__main__":
    sys.exit(main())

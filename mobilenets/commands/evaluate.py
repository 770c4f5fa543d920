"""Evaluates a training run, a saved Keras model or a .tflite file on a dataset.

    python evaluate.py runs/v2_lgc                          # the run's own data, the split it held out
    python evaluate.py runs/v2_lgc --convert --plot classes.png
    python evaluate.py runs/v2_lgc --dataset cifar100 --data-dir /elsewhere/cifar-100
    python evaluate.py runs/v2_lgc/converted.keras --dataset cifar100 --data-dir ~/data/cifar-100
    python evaluate.py model.tflite --dataset cifar100 --data-dir ~/data/cifar-100 --num-threads 4 --json report.json

A run (or one of its checkpoints) is evaluated on the data it trained on, read as
training read it (dataset, data directory, image size, validation_fraction split,
evaluation crop: its config.json), on the images it held out; --dataset, --data-dir
and --image-size override them. A run that held out nothing is refused unless
--split train (then reported as its training images). The report says which
checkpoint was restored: --checkpoint best takes the last one, and says so, when the
run kept no best one (it had no validation split).

Prints top-1, top-5, loss, the number of images, per-class top-1 with the confusion
matrix (--plot draws it; --json holds it), parameters, multiply-adds and,
for a .tflite, the latency per image and its standard metadata (input size,
normalization, output and its quantization, labels; `mobilenets-tflite-info`
prints it without evaluating). A .tflite that outputs probabilities (our
default export) is scored with log p as its logits. --convert turns a learned-group-conv
model into standard group convolutions (CondenseNet's test-time form), evaluates
that and saves it. Ctrl-C stops it with one line and exit status 130; the outputs
(--json, --plot, --output) are written last, all or none. All behaviour lives in
mobilenets/evaluation.py.
"""

import sys

from hparams.config import DATASET_NUM_CLASSES
from mobilenets.commands import cli
from mobilenets.commands.cli import positive_int

SPLITS = ("train", "validation", "val", "test")  # what the data sources call their splits (mobilenets.data)


def parse_args(argv=None):
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument(
        "model", help="run directory, checkpoint prefix, .keras/.h5 file, SavedModel directory or .tflite file"
    )
    parser.add_argument(
        "--dataset", default=None, type=str.lower, choices=tuple(DATASET_NUM_CLASSES),
        help="cifar10, cifar100, imagenet, folder, npz or synthetic (default: the run's, or the .tflite's run's)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="where the dataset is (default: the run's; see mobilenets.data)"
    )
    parser.add_argument(
        "--split", default=None, type=str.lower, choices=SPLITS,
        help="default: the split the run held out, else validation (CIFAR: its test set)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=50)
    parser.add_argument(
        "--image-size", type=positive_int, default=None,
        help="default: the run's model input size (a .tflite's own), else the dataset's",
    )
    parser.add_argument("--max-images", type=positive_int, default=None, help="stop after this many images")
    parser.add_argument(
        "--checkpoint", choices=("best", "last"), default="best",
        help="which checkpoint of a run (default: best; the last, as the report says, when the run kept no best one)",
    )
    parser.add_argument(
        "--convert", action="store_true", help="convert learned group convs to standard group convs, evaluate, save"
    )
    parser.add_argument("--output", default=None, help="where --convert saves (.keras, .h5 or a SavedModel directory)")
    parser.add_argument(
        "--condense-remaining", action="store_true", help="with --convert: run condensation stages training did not"
    )
    parser.add_argument("--num-threads", type=positive_int, default=None, help=".tflite interpreter threads")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    parser.add_argument(
        "--plot", default=None, metavar="PATH", help="draw the confusion matrix and per-class top-1 into this PNG"
    )
    return parser.parse_args(argv)


INTERRUPTED = 130  # the shell's exit status for SIGINT


def main(argv=None):
    args = parse_args(argv)
    try:
        return evaluate_and_print(args)
    except KeyboardInterrupt:  # outputs are written last and uninterruptibly (evaluation._uninterrupted)
        print("interrupted: nothing was written", file=sys.stderr)
        return INTERRUPTED


def evaluate_and_print(args):
    evaluation = cli.import_quietly("mobilenets.evaluation")

    def evaluate():
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
            plot_path=args.plot,
            progress=cli.terminal_progress(),
        )
        print(evaluation.format_report(report))

    return cli.run(evaluate)


if __name__ == "__main__":
    sys.exit(main())

"""Trains a MobileNet-family model with Keras `fit` (any tf.distribute strategy).

    python train.py --model mobilenetv2_lgc                    # its default preset (the seed's CIFAR-100 recipe)
    python train.py --preset imagenet_mobilenetv2 --data-dir ~/data/imagenet --strategy mirrored
    python train.py --model mobilenetv2 --dataset synthetic --epochs 2 --set run.steps_per_epoch=5
    python train.py --config my.yaml --set optimizer.lr=0.05 --run-dir runs/mine
    python train.py --preset finetune --model mobilenetv3_large --weights imagenet --data-dir photos/

Settings come from the preset (--preset, else --model's default), then --config FILE (JSON or
YAML, only the keys it changes), then the shortcut flags, then every --set section.key=value
(repeatable, applied last). The resolved config is written to RUN_DIR/config.json; the default
run directory is runs/<model>-<dataset>-<config hash>. Killed or interrupted? Run the same
command again: it resumes from the last checkpoint (to continue with changed settings, add
--resume). A loss that turns NaN stops the run (--on-nan stop|raise) or, with --on-nan restart,
continues from the last good checkpoint with half the learning rate (run.nan_lr_factor). All behaviour lives in mobilenets/training/ (this file only parses arguments).
"""

import json
import sys

from mobilenets import learning
from mobilenets.commands import cli

# flag -> config key; the value is parsed and checked by hparams like a --set value.
SHORTCUTS = {
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "epochs": "schedule.epochs",
    "batch_size": "schedule.batch_size",
    "lr": "optimizer.lr",
    "width": "model.width_multiplier",
    "run_dir": "run.run_dir",
    "seed": "run.seed",
    "strategy": "run.strategy",
    "mixed_precision": "run.mixed_precision",
    "steps_per_epoch": "run.steps_per_epoch",
    "on_nan": "run.nan_policy",
    "weights": "model.weights",
}
SWITCHES = {"xla": "run.xla", "resume": "run.resume"}


def parse_args(argv=None):
    parser = cli.ArgumentParser(__doc__)
    what = parser.add_argument_group("what to train")
    what.add_argument("--model", help="model name; without --preset, starts from its default preset")
    what.add_argument("--preset", help="named recipe (see --list-presets)")
    what.add_argument("--config", metavar="FILE", help="JSON or YAML config (only the keys it changes)")
    what.add_argument("--set", "-o", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                      help="override any setting, e.g. --set optimizer.lr=0.05 (repeatable, applied last)")
    short = parser.add_argument_group("shortcuts (the same as --set KEY=VALUE)")
    for flag, key in SHORTCUTS.items():
        short.add_argument("--" + flag.replace("_", "-"), dest=flag, metavar="VALUE", help=key)
    short.add_argument("--xla", action="store_true", help="run.xla=true: jit-compile the train step")
    short.add_argument("--resume", action="store_true",
                       help="run.resume=true: continue the run in --run-dir even if its settings differ")
    run = parser.add_argument_group("running")
    run.add_argument("--sync-batchnorm", action="store_true",
                     help="with several replicas, BatchNorm over the global batch (matches one device exactly)")
    run.add_argument("--verbose", choices=("0", "1", "2", "auto"), default="auto",
                     help="Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch")
    run.add_argument("--run-eagerly", action="store_true", help="run the train step eagerly (debugging, tiny runs)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="train on N Ray workers (MultiWorkerMirroredStrategy; pip install \"mobilenets[ray]\")")
    run.add_argument("--ray-address", metavar="ADDR",
                     help="with --workers: the Ray cluster to join (auto, HOST:6379); default: Ray on this machine")
    run.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    run.add_argument("--list-presets", nargs="?", const="", default=None, metavar="NAME",
                     help="list the presets, one line each, and exit; with a NAME, that preset's whole description")
    return parser.parse_args(argv)


def overrides_of(args):
    """The --set strings the flags stand for, shortcuts first, then the user's --set values."""
    shortcuts = [f"{key}={getattr(args, flag)}" for flag, key in SHORTCUTS.items() if getattr(args, flag) is not None]
    switches = [f"{key}=true" for flag, key in SWITCHES.items() if getattr(args, flag)]
    return shortcuts + switches + args.overrides


def learning_warnings(result):
    """The lines that say a finished run learned nothing that holds on held-out images, or overfits."""
    validation = result.last("val_accuracy")
    if validation is None:
        return []
    lines = [learning.overfitting_warning(result.last("accuracy"), validation),
             learning.chance_warning(validation, result.num_classes, result.validation_examples,
                                     "validation top-1 of the last epoch")]
    return [line for line in lines if line]


def main(argv=None):
    args = parse_args(argv)
    from hparams import describe_preset, list_presets, summarize_preset
    from mobilenets.training.settings import resolve_config

    if args.list_presets == "":
        for name in list_presets():
            print(f"{name}: {summarize_preset(name, width=118 - len(name))}")
        print("python train.py --list-presets NAME: the whole description of one")
        return 0
    if args.list_presets:
        return cli.run(lambda: print(f"{args.list_presets}: {describe_preset(args.list_presets)}"))

    def train_and_report():
        config = resolve_config(args.model, args.preset, args.config, overrides_of(args),
                                log=None if args.print_config else print)
        if args.print_config:
            print(json.dumps(config.to_dict(), indent=2))
            return 0
        verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
        if args.workers is not None or args.ray_address:  # issue 34: the trainer below in N Ray workers
            ray_workers = cli.import_quietly("mobilenets.training.ray_workers")
            result = ray_workers.train_on_ray(config, args.workers, args.ray_address, verbose=verbose,
                                              sync_batchnorm=args.sync_batchnorm, run_eagerly=args.run_eagerly)
        else:
            trainer = cli.import_quietly("mobilenets.training.trainer")
            result = trainer.train(config, sync_batchnorm=args.sync_batchnorm, verbose=verbose,
                                   run_eagerly=args.run_eagerly)
        best = "n/a" if result.best_top1 is None else learning.with_chance(result.best_top1, result.num_classes)
        epochs = f"{result.epochs_done} epoch{'' if result.epochs_done == 1 else 's'}"
        print(f"{'stopped' if result.diverged else 'done'}: {epochs}, best validation top-1 {best}, run directory "
              f"{result.run_dir}")
        for warning in learning_warnings(result):
            print(warning)
        return 1 if result.diverged else 0

    try:
        return cli.run(train_and_report)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

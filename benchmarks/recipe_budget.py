"""Training recipes at a fixed CPU budget on the real CIFAR-10 slice (issue 15).

    python benchmarks/recipe_budget.py [--budget-cpu-minutes 30] [--threads 1]
        [--recipes today short short_lgc] [--data ../shared/data/cifar10_real_5k.npz]
        [--set NAME:section.key=value ...] [--json out.json]

Each recipe trains MobileNetV2-CIFAR 0.5 (bfloat16) through the trainer on the 85% training split of
`cifar10_real_5k.npz` (validation split seed 0, as in benchmarks/train_cifar_real.py) and is
scored on the 15% it never trains on. The budget is CPU time of this process
(`time.process_time`, every thread), so recipes compare at equal compute even when the machine
is shared; training stops at the first step past the budget and the held-out top-1 is then
measured. Recipes:

  today      benchmarks/train_cifar_real.py's configuration (the seed's CIFAR recipe with
             width 0.5, 1-epoch warm-up, wd 5e-4, BatchNorm momentum 0.9), its epochs set to
             what fits the budget so that its cosine schedule ends;
  short      the `cifar10_short` preset;
  short_lgc  the `cifar10_short` preset with model mobilenetv2_lgc.

A variant of a recipe: --set short:regularization.label_smoothing=0.1 --set short:data.random_erasing=0.25.
"""

import argparse
import os
import sys
import tempfile
import time

import tf_keras as keras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.train_cifar_real import DATA  # noqa: E402
from hparams import apply_overrides, get_preset  # noqa: E402
from mobilenets.io import write_json  # noqa: E402
from mobilenets.training import train  # noqa: E402

TODAY_EPOCHS_PER_CPU_MINUTE = 20 / 30  # measured: 85 CPU-seconds an epoch (validation included), 1 thread, this CPU


class CpuBudget(keras.callbacks.Callback):
    """Stops training at the first step after `seconds` of process CPU time; records where it stopped."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.start, self.stopped_at = seconds, time.process_time(), None
        self.epoch_cpu_seconds = []

    def used(self):
        return time.process_time() - self.start

    def on_train_batch_end(self, batch, logs=None):
        if self.used() >= self.seconds and self.stopped_at is None:
            self.stopped_at = (self.epoch, batch + 1)
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_start = epoch, time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_cpu_seconds.append(round(time.process_time() - self.epoch_start, 1))


def split_overrides(run_dir, data):
    """The 85/15 split of the real slice, as in benchmarks/train_cifar_real.py."""
    return [
        "data.dataset=npz", f"data.data_dir={os.path.abspath(data)}", "data.validation_fraction=0.15",
        "model.num_classes=10", "model.width_multiplier=0.5", "run.mixed_precision=mixed_bfloat16",
        f"run.run_dir={run_dir}", "run.seed=0", "run.log_every=20",
    ]


def recipe_config(recipe, run_dir, args):
    split = split_overrides(run_dir, args.data)
    extra = [o.split(":", 1)[1] for o in args.overrides if o.split(":", 1)[0] == recipe]
    if recipe == "today":
        epochs = max(1, int(args.budget_cpu_minutes * TODAY_EPOCHS_PER_CPU_MINUTE))
        return apply_overrides(get_preset("cifar10_mobilenetv2"), [
            *split, f"schedule.epochs={epochs}", "schedule.batch_size=64", "optimizer.lr=0.1",
            "schedule.warmup_epochs=1", "regularization.weight_decay=5e-4", "model.bn_momentum=0.9",
            "data.shuffle_buffer=5085", *extra,
        ])
    model = ["model.name=mobilenetv2_lgc"] if recipe == "short_lgc" else []
    return apply_overrides(get_preset("cifar10_short"), [*split, *model, *extra])


def run_recipe(recipe, args):
    run_dir = tempfile.mkdtemp(prefix=f"budget_{recipe}_")
    config = recipe_config(recipe, run_dir, args)
    budget = CpuBudget(args.budget_cpu_minutes * 60)
    wall = time.perf_counter()
    result = train(config, callbacks=[budget], verbose=2)
    wall = time.perf_counter() - wall
    last = result.history[-1].get("val_accuracy", float("nan")) if result.history else float("nan")
    return {
        "recipe": recipe, "model": config.model.name, "run_dir": run_dir,
        "epochs_planned": config.schedule.epochs, "epochs_done": result.epochs_done,
        "stopped_by_budget_at": budget.stopped_at, "cpu_minutes": budget.used() / 60, "wall_minutes": wall / 60,
        "epoch_cpu_seconds": budget.epoch_cpu_seconds, "held_out_top1_last": last, "held_out_top1_best": result.best_top1,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--budget-cpu-minutes", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads")
    parser.add_argument("--recipes", nargs="+", default=["today", "short", "short_lgc"],
                        choices=["today", "short", "short_lgc"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="RECIPE:SECTION.KEY=VALUE")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not os.path.exists(args.data):
        print(f"error: {args.data} not found (the real-data sample lives in ../shared/data)", file=sys.stderr)
        return 2
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    reports = [run_recipe(recipe, args) for recipe in args.recipes]
    print(f"\nbudget {args.budget_cpu_minutes:g} CPU-minutes, {args.threads} thread(s)")
    print("| recipe | model | epochs done / planned | cut by budget | CPU min | wall min | held-out top-1 (last) | best |")
    print("|---|---|---|---|---|---|---|---|")
    for r in reports:
        print(f"| {r['recipe']} | {r['model']} | {r['epochs_done']} / {r['epochs_planned']} | "
              f"{'yes' if r['stopped_by_budget_at'] else 'no'} | {r['cpu_minutes']:.1f} | {r['wall_minutes']:.1f} | "
              f"{r['held_out_top1_last']:.4f} | {r['held_out_top1_best']:.4f} |")
    if args.json:
        write_json(args.json, {"command": " ".join([sys.executable, *sys.argv]), "reports": reports})
    return 0


if __name__ == "__main__":
    sys.exit(main())

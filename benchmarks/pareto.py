"""Which model to deploy: held-out top-1 against measured latency, every CIFAR model at one CPU budget (issue 24).

    python benchmarks/pareto.py                                  # the default grid, ~2 h on this 2-core machine
    python benchmarks/pareto.py --models mobilenetv2 mobilenetv2_lgc --widths 0.5 --seeds 0 1 2
    python benchmarks/pareto.py --budget-cpu-minutes 2 --seeds 0 # a smaller budget
    python benchmarks/pareto.py --epochs 1 --steps-per-epoch 5   # fixed length instead of a budget (smoke runs)
    python benchmarks/pareto.py --models mobilenetv2 --widths 0.5 --seeds 0 --budget-cpu-minutes 30 \
        --set regularization.label_smoothing=0.1 --out /tmp/ls01  # a recipe variant, scored as files

Each point (model, width, seed) trains through the trainer on the 85% training split of
`cifar10_real_5k.npz` (validation split seed 0, as benchmarks/recipe_budget.py and
train_cifar_real.py split it) with the recipe that suits its model (RECIPES): `cifar10_short`
for the MobileNetV2 family, IGCV3 and MobileNetV3, `cifar10_short_v4` for MobileNetV4, each with
its schedule (epochs, warm-up) compressed to the budget. The budget is process CPU time at
--threads TensorFlow threads (`time.process_time`, as recipe_budget.py counts it), equal for every
point: a short probe (PROBE_STEPS training steps, once per model and width, kept in
OUT/probes/) measures what a step costs, the run gets as many steps as fit, split into
whole-data epochs so that its cosine schedule ends, and `recipe_budget.CpuBudget` stops it if it
overruns. The last checkpoint (never the best on the held-out split: that would select on the
test set) is exported float32 and int8 by `mobilenets.deploy.export.export`, as export_tflite.py
does (a learned-group-conv model converted, each block in its fastest form), calibrated on the
run's own training images; the Keras model and both files are scored on the 763 held-out
images. Finally every file of the grid is loaded in this one process and timed interleaved,
invoke by invoke (`tflite_latency.interleaved_latencies_ms`, --threads threads), so that load
changes on a shared machine hit every model alike.

Points run as --jobs subprocesses side by side (one TensorFlow thread each by default). The
work is resumable at every stage: a point whose OUT/points/NAME/point.json exists is reused
untouched; a killed run resumes from its last checkpoint (the trainer resumes a run directory)
with the CPU it has left (OUT/points/NAME/training.json keeps the CPU its finished epochs used);
a missing export or score is redone. Writes OUT/pareto.csv (one row per point), OUT/summary.csv
(mean and standard deviation over seeds per model and width; for the learned-group-conv models, their
latency over dense MobileNetV2's at the same width and their top-1 against the dense front at equal
latency: `against_dense`) and OUT/pareto.png (top-1 against float32 and int8 latency, Pareto front
drawn, and against multiply-adds) when matplotlib is installed.

Per point at the default 5 CPU-minutes (measured, MobileNetV4-Conv-S 0.5): 5.1 CPU-minutes of
training (4 epochs of 61 steps), 5.5 CPU-seconds to start, 13 to export both files, 7 to score,
and once per model and width a 24 CPU-second probe: ~5.5 minutes a point, more for an LGC model,
whose export times each block's forms. 39 points two at a time take ~1.8-2 hours on a quiet
2-core machine (a loaded one stretches the wall time, not the budget).
"""

import argparse
import csv
import dataclasses
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.recipe_budget import CpuBudget, split_overrides  # noqa: E402
from benchmarks.tflite_latency import deployed_madds, interleaved_latencies_ms  # noqa: E402
from benchmarks.train_cifar_real import DATA  # noqa: E402
from mobilenets.io import atomic_path, write_json  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "pareto")
# (model, widths): the issue's grid, MobileNetV2 from 0.25 so that the dense ladder spans the LGC models' latencies
# (`against_dense`). MobileNetV3-Large at 0.5 (68.6M multiply-adds at 32x32) sits among
# the others; at 1.0 (227.5M) it would get a third of their epochs.
GRID = (
    ("mobilenetv2", (0.25, 0.35, 0.5, 0.75)),
    ("mobilenetv2_lgc", (0.5, 0.75)),
    ("mobilenetv2_gc_lgc", (0.5, 0.75)),
    ("mobilenetv3_small", (1.0,)),
    ("mobilenetv3_large", (0.5,)),
    ("mobilenetv4_conv_small", (0.5,)),
    ("igcv3", (0.5,)),
    ("mobilenetv2_gc", (0.5,)),
)
RECIPES = {"mobilenetv4_conv_small": "cifar10_short_v4"}  # every other model: DEFAULT_RECIPE
DEFAULT_RECIPE = "cifar10_short"
PROBE_STEPS = 12  # training steps the probe times; the first two (tracing, warm-up) are left out
# Share of the budget planned as steps at the probe's rate; the rest covers tracing, checkpoints, the last
# validation and the rate's drift on a shared machine (at 0.92 a V4 run overran by 12 of its 244 steps).
PLANNED_FRACTION = 0.85
PRECISIONS = {"float32": "none", "int8": "int8"}
POINT_FILE, TRAINING_FILE = "point.json", "training.json"
FIELDS = ("model", "width", "seed", "madds", "madds_deployed", "params", "keras_top1", "float32_top1", "int8_top1",
          "float32_ms", "int8_ms", "recipe", "budget_cpu_minutes", "epochs", "steps_per_epoch", "train_cpu_minutes",
          "held_out_images", "train_steps", "step_cpu_ms")
AVERAGED = ("madds", "madds_deployed", "params", "keras_top1", "float32_top1", "int8_top1", "float32_ms", "int8_ms",
            "train_cpu_minutes", "step_cpu_ms")


@dataclasses.dataclass(frozen=True)
class Point:
    model: str
    width: float
    seed: int

    @property
    def name(self):
        return f"{self.model}_w{self.width:g}_s{self.seed}"

    def directory(self, out):
        return os.path.join(out, "points", self.name)

    def run_dir(self, out):
        return os.path.join(self.directory(out), "run")

    def file(self, out, name):
        return os.path.join(self.directory(out), name)


def recipe_of(model, args=None):
    """--recipe when given, else the preset that suits the model (RECIPES)."""
    return (args and args.recipe) or RECIPES.get(model, DEFAULT_RECIPE)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- one point (runs in a worker process)


def recipe_config(point, run_dir, args, epochs, steps_per_epoch=None, validation_fraction=None):
    """The point's recipe on the real slice's 85/15 split, its schedule compressed to `epochs`
    (the warm-up keeps its share of the preset's epochs); validated once, after the last epoch."""
    from hparams import apply_overrides, get_preset

    preset = get_preset(recipe_of(point.model, args))
    warmup = preset.schedule.warmup_epochs * epochs / preset.schedule.epochs
    overrides = [
        *split_overrides(run_dir, args.data), f"model.name={point.model}", f"model.width_multiplier={point.width}",
        f"run.seed={point.seed}", f"schedule.epochs={epochs}", f"schedule.warmup_epochs={warmup:.4g}",
        f"run.eval_every={epochs}", f"run.mixed_precision={preset.run.mixed_precision or 'null'}",
    ]
    if steps_per_epoch:
        overrides.append(f"run.steps_per_epoch={steps_per_epoch}")
    if validation_fraction is not None:
        overrides.append(f"data.validation_fraction={validation_fraction}")
    return apply_overrides(preset, [*overrides, *args.overrides])


def quiet(*_):
    pass


def probe(point, args):
    """{'step_cpu_seconds', 'first_step_cpu_seconds'} of this model and width under its recipe, timed once
    (PROBE_STEPS steps of a throwaway run) and kept in OUT/probes/."""
    import tf_keras as keras

    from mobilenets.training import train

    path = os.path.join(args.out, "probes", f"{point.model}_w{point.width:g}_t{args.threads}.json")
    known = read_json(path)
    if known:
        return known

    class StepClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.start, self.ends = time.process_time(), []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.process_time())

    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="pareto_probe_") as directory:
        # Nothing held out, so no validation pass: only the steps are timed (the model is thrown away).
        config = recipe_config(point, os.path.join(directory, "run"), args, 1, PROBE_STEPS, validation_fraction=0)
        clock.start = time.process_time()
        train(config, callbacks=[clock], verbose=0, log=quiet)
    steps = [later - earlier for earlier, later in zip(clock.ends[1:], clock.ends[2:])]
    measured = {"step_cpu_seconds": statistics.median(steps), "first_step_cpu_seconds": clock.ends[0] - clock.start,
                "steps_timed": len(steps), "probe_cpu_seconds": time.process_time() - clock.start,
                "recipe": recipe_of(point.model, args), "overrides": args.overrides, "threads": args.threads}
    write_json(path, measured)
    return measured


def plan(point, args):
    """(epochs, steps per epoch or None for whole epochs): --epochs as given, else what fits the budget."""
    if args.epochs:
        return args.epochs, args.steps_per_epoch
    from mobilenets.training.inputs import plan_data

    full = plan_data(recipe_config(point, point.run_dir(args.out), args, 1)).steps_per_epoch
    full = min(full, args.steps_per_epoch or full)
    steps = max(1, int(args.budget_cpu_minutes * 60 * PLANNED_FRACTION / probe(point, args)["step_cpu_seconds"]))
    epochs = max(1, math.ceil(steps / full))
    per_epoch = min(full, max(1, steps // epochs))
    return epochs, (per_epoch if per_epoch < full or args.steps_per_epoch else None)


def train_point(point, args):
    """Trains (or resumes) the point's run; returns its training record. The plan (epochs, steps) is made at
    the first start and kept in training.json with the CPU the finished epochs used, so that a resumed run
    keeps its schedule and gets what is left of its budget."""
    import tf_keras as keras

    from mobilenets.training import train

    ledger_path = point.file(args.out, TRAINING_FILE)
    ledger = read_json(ledger_path)
    if ledger and ledger.get("finished"):
        return ledger
    if not ledger:
        epochs, steps_per_epoch = plan(point, args)
        ledger = {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "cpu_seconds": 0.0, "epochs_done": 0}
        write_json(ledger_path, ledger)
    config = recipe_config(point, point.run_dir(args.out), args, ledger["epochs"], ledger["steps_per_epoch"])

    class Ledger(keras.callbacks.Callback):
        """Adds the CPU of each finished epoch to training.json (an epoch a kill cut short is redone, not counted)."""

        def __init__(self):
            super().__init__()
            self.before, self.start = ledger["cpu_seconds"], time.process_time()
            self.steps = ledger.get("steps_done", 0)

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1

        def on_epoch_end(self, epoch, logs=None):
            ledger.update(cpu_seconds=self.before + time.process_time() - self.start, epochs_done=epoch + 1,
                          steps_done=self.steps)
            write_json(ledger_path, ledger)

    callbacks, stop = [Ledger()], None
    if not args.epochs:  # a budget run: stopped where its budget ends, should the plan overrun it
        stop = CpuBudget(max(args.budget_cpu_minutes * 60 - ledger["cpu_seconds"], 0.0))
        callbacks.insert(0, stop)
    train(config, callbacks=callbacks, verbose=2)
    ledger.update(finished=True, stopped_by_budget_at=stop and stop.stopped_at)
    write_json(ledger_path, ledger)
    return ledger


def held_out_batches(run_dir):
    """The split the run held out (never trained on), read as the run read its data."""
    from mobilenets.data import make_dataset
    from mobilenets.runs import run_data

    data = run_data(run_dir)
    return make_dataset(**data.dataset_arguments(data.held_out()), batch_size=100, training=False)


def export_point(point, args):
    """{precision: (path, deployment note)}: float32 and int8 files of the run's last checkpoint, made when missing."""
    from mobilenets.deploy.export import export

    files = {}
    for precision, mode in PRECISIONS.items():
        path = point.file(args.out, f"{precision}.tflite")
        if not (os.path.exists(path) and os.path.exists(path + ".json")):
            export(point.run_dir(args.out), path, quantize=mode, which="last", threads=args.threads, latency_runs=1)
        files[precision] = (path, read_json(path + ".json")["report"]["deployment"])
    return files


def score_point(point, args, ledger, files):
    """The point's record: costs, and held-out top-1 of the Keras model and of each file."""
    from mobilenets.deploy.runtime import TFLitePredictor
    from mobilenets.evaluation import KerasPredictor, evaluate
    from mobilenets.models.costs import count
    from mobilenets.runs import load_run

    run_dir = point.run_dir(args.out)
    model = load_run(run_dir, "last")
    keras_metrics = evaluate(KerasPredictor(model), held_out_batches(run_dir))
    cost = count(model)
    record = {
        "model": point.model, "width": point.width, "seed": point.seed, "madds": cost.madds, "params": cost.params,
        "madds_deployed": deployed_madds(files["float32"][1], model), "keras_top1": keras_metrics.top1,
        "held_out_images": keras_metrics.num_images, "recipe": recipe_of(point.model, args),
        "overrides": args.overrides,
        "budget_cpu_minutes": args.budget_cpu_minutes if not args.epochs else None, "epochs": ledger.get("epochs"),
        "steps_per_epoch": ledger.get("steps_per_epoch"), "train_cpu_minutes": ledger["cpu_seconds"] / 60,
        "train_steps": ledger.get("steps_done"),
        "stopped_by_budget_at": ledger.get("stopped_by_budget_at"),
    }
    for precision, (path, note) in files.items():
        predictor = TFLitePredictor(path, args.threads)
        record[f"{precision}_top1"] = evaluate(predictor, held_out_batches(run_dir)).top1
        record[f"{precision}_file"], record[f"{precision}_deployment"] = os.path.relpath(path, args.out), note
    return record


def run_point(point, args):
    """Trains, exports and scores one point unless its point.json is there; returns its record."""
    done = read_json(point.file(args.out, POINT_FILE))
    if done:
        return done
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    os.makedirs(point.directory(args.out), exist_ok=True)
    stages, clock = {}, 0.0  # CPU-seconds of this process per stage, from its start (imports included)

    def stage(name):
        nonlocal clock
        stages[name], clock = round(time.process_time() - clock, 1), time.process_time()

    stage("start")
    ledger = train_point(point, args)
    stage("train")  # the probe included, when this point measured it
    files = export_point(point, args)
    stage("export")
    record = score_point(point, args, ledger, files)
    stage("score")
    record["worker_cpu_seconds"] = stages
    write_json(point.file(args.out, POINT_FILE), record)
    print(f"{point.name}: Keras {record['keras_top1']:.1%}, float32 {record['float32_top1']:.1%}, "
          f"int8 {record['int8_top1']:.1%} top-1 after {record['train_cpu_minutes']:.1f} CPU-minutes", flush=True)
    return record


# ---------------------------------------------------------------- the grid (this process)


def grid(args):
    """The points of the requested grid, seed-major: the two jobs running at once are different models,
    so no probe is measured twice."""
    chosen = [(model, args.widths or widths) for model, widths in GRID if not args.models or model in args.models]
    chosen += [(model, args.widths or (0.5,)) for model in (args.models or ()) if model not in dict(GRID)]
    return [Point(model, float(width), seed) for seed in args.seeds for model, widths in chosen for width in widths]


def worker_command(point, args):
    command = [sys.executable, os.path.abspath(__file__), "--point", point.model, f"{point.width:g}", str(point.seed),
               "--data", args.data, "--out", args.out, "--budget-cpu-minutes", f"{args.budget_cpu_minutes:g}",
               "--threads", str(args.threads)]
    if args.recipe:
        command += ["--recipe", args.recipe]
    command += [f"--set={override}" for override in args.overrides]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    if args.steps_per_epoch:
        command += ["--steps-per-epoch", str(args.steps_per_epoch)]
    return command


def run_jobs(points, args):
    """Runs the unfinished points, args.jobs worker processes at a time; returns the names that failed."""
    todo = [point for point in points if not os.path.exists(point.file(args.out, POINT_FILE))]
    print(f"{len(points) - len(todo)} of {len(points)} points already done; {len(todo)} to run, {args.jobs} at a time",
          flush=True)
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": str(args.threads), "TF_NUM_INTEROP_THREADS": str(args.threads),
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    running, failed = {}, []
    while todo or running:
        while todo and len(running) < args.jobs:
            point = todo.pop(0)
            os.makedirs(point.directory(args.out), exist_ok=True)
            log = open(point.file(args.out, "log.txt"), "a")
            running[point] = (subprocess.Popen(worker_command(point, args), stdout=log, stderr=subprocess.STDOUT,
                                               env=env), log, time.perf_counter())
        time.sleep(0.2)
        for point, (process, log, start) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[point]
            minutes = (time.perf_counter() - start) / 60
            if process.returncode:
                failed.append(point.name)
                print(f"{point.name} FAILED after {minutes:.1f} min (exit {process.returncode}): "
                      f"{last_line(point.file(args.out, 'log.txt'))}", flush=True)
            else:
                print(f"{point.name} done in {minutes:.1f} min", flush=True)
    return failed


def last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "(no output)"


def time_files(rows, args):
    """Adds float32_ms and int8_ms to each row: every file on disk timed in this process, interleaved, and the
    figures kept in its point.json; a point whose files are not here (its point.json came from another
    machine: .tflite files stay out of git) keeps the figures timed there."""
    here = [row for row in rows if all(os.path.exists(os.path.join(args.out, row[f"{p}_file"])) for p in PRECISIONS)]
    elsewhere = [row for row in rows if row not in here]
    missing = [row for row in elsewhere if any(row.get(f"{p}_ms") is None for p in PRECISIONS)]
    if missing:
        raise SystemExit(f"error: {len(missing)} point(s) have neither their .tflite files nor timings (first: "
                         f"{missing[0]['model']} {missing[0]['width']:g} seed {missing[0]['seed']}); delete their "
                         f"point.json to train them again")
    if elsewhere:
        print(f"{len(elsewhere)} point(s) keep the latencies timed where their files were made (files not here)")
    paths = [os.path.join(args.out, row[f"{precision}_file"]) for row in here for precision in PRECISIONS]
    latencies = iter(interleaved_latencies_ms(paths, args.threads, args.runs, args.warmup) if paths else ())
    for row in here:
        first_timing = row.get("float32_ms") is None
        for precision in PRECISIONS:
            row[f"{precision}_ms"] = next(latencies)
        if first_timing:  # kept for a machine without the files; a finished point.json is not rewritten after
            write_json(os.path.join(args.out, os.path.dirname(row["float32_file"]), POINT_FILE), row)


def summarize(rows):
    """One row per (model, width): the mean and standard deviation over seeds of AVERAGED."""
    groups = {}
    for row in rows:
        groups.setdefault((row["model"], row["width"]), []).append(row)
    summary = []
    for (model, width), members in groups.items():
        entry = {"model": model, "width": width, "seeds": len(members), "recipe": members[0]["recipe"]}
        for key in AVERAGED:
            values = [float(member[key]) for member in members if member.get(key) not in (None, "")]
            entry[f"{key}_mean"] = statistics.fmean(values) if values else None
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


DENSE_REFERENCE = "mobilenetv2"
COMPARED = ("mobilenetv2_lgc", "mobilenetv2_gc_lgc")  # the goal: learned group convs against dense V2


def dense_front_at(latency, dense, precision):
    """The dense reference's Pareto front at `latency` (ms): the best mean top-1 of its widths that run in at most
    that time; None when none does."""
    reachable = [e[f"{precision}_top1_mean"] for e in dense if e[f"{precision}_ms_mean"] <= latency]
    return max(reachable) if reachable else None


def against_dense(summary):
    """For each COMPARED entry, per precision: its latency over the dense reference's at the same width
    (`<p>_ms_vs_dense`) and its mean top-1 minus the dense front's at equal latency (`<p>_top1_vs_dense`, in
    points; empty when it is faster than every dense width). The issue's goal: <= 0.6, or >= +1 point."""
    dense = [e for e in summary if e["model"] == DENSE_REFERENCE]
    by_width = {e["width"]: e for e in dense}
    for entry in summary:
        if entry["model"] not in COMPARED:
            continue
        same = by_width.get(entry["width"])
        entry["step_vs_dense"] = (entry["step_cpu_ms_mean"] / same["step_cpu_ms_mean"]
                                  if same and entry.get("step_cpu_ms_mean") and same.get("step_cpu_ms_mean") else None)
        for precision in PRECISIONS:
            same = by_width.get(entry["width"])
            entry[f"{precision}_ms_vs_dense"] = (entry[f"{precision}_ms_mean"] / same[f"{precision}_ms_mean"]
                                                 if same else None)
            reference = dense_front_at(entry[f"{precision}_ms_mean"], dense, precision)
            entry[f"{precision}_top1_vs_dense"] = (100 * (entry[f"{precision}_top1_mean"] - reference)
                                                   if reference is not None else None)
    return summary


COMPARISON_FIELDS = (*(f"{p}_{k}_vs_dense" for p in PRECISIONS for k in ("ms", "top1")), "step_vs_dense")


def step_cpu_ms(row):
    """CPU-milliseconds per training step over the whole run (tracing, checkpoints and the last validation
    included); None when the steps are not known (a point from before `train_steps` was recorded, trained in
    whole epochs)."""
    steps = row.get("train_steps") or (row["epochs"] * row["steps_per_epoch"] if row.get("steps_per_epoch") else None)
    return 60000 * row["train_cpu_minutes"] / steps if steps and row.get("train_cpu_minutes") else None


def write_csv(path, rows, fields):
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


def pareto_front(points):
    """The (cost, top-1) pairs no other pair beats on both (lower cost, higher top-1), by cost."""
    front = []
    for cost, top1 in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or top1 > front[-1][1]:
            front.append((cost, top1))
    return front


FAMILY_COLOURS = (("mobilenetv2_gc_lgc", "C1"), ("mobilenetv2_lgc", "C3"), ("mobilenetv2_gc", "C4"), ("igcv3", "C5"),
                  ("mobilenetv3", "C2"), ("mobilenetv4", "C6"), ("mobilenetv2", "C0"))


def colour(model):
    return next(c for prefix, c in FAMILY_COLOURS if model.startswith(prefix))


def plot(summary, path, budget_note):
    """Held-out top-1 against float32 and int8 latency (Pareto front dashed) and against multiply-adds as deployed;
    error bars: standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("float32_ms", "float32_top1", "float32 .tflite", "latency (ms, LiteRT + XNNPACK, 1 thread)"),
              ("int8_ms", "int8_top1", "int8 .tflite", "latency (ms, LiteRT + XNNPACK, 1 thread)"),
              ("madds_deployed", "keras_top1", "Keras float32", "multiply-adds as deployed (M)"))
    figure, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    for axis, (x_key, y_key, title, x_label) in zip(axes, panels):
        scale = 1e-6 if x_key.startswith("madds") else 1.0
        for entry in summary:
            x, y = entry[f"{x_key}_mean"] * scale, 100 * entry[f"{y_key}_mean"]
            axis.errorbar(x, y, xerr=entry[f"{x_key}_std"] * scale, yerr=100 * entry[f"{y_key}_std"], fmt="o",
                          color=colour(entry["model"]), capsize=3, markersize=5)
            axis.annotate(f"{entry['model'].replace('mobilenet', '')} {entry['width']:g}", (x, y), fontsize=7,
                          xytext=(4, 3), textcoords="offset points")
        front = pareto_front([(e[f"{x_key}_mean"] * scale, 100 * e[f"{y_key}_mean"]) for e in summary])
        axis.step([c for c, _ in front], [t for _, t in front], where="post", color="k", linestyle="--",
                  linewidth=1, label="Pareto front (means)")
        axis.set(title=f"{title}: held-out top-1 ({budget_note})", xlabel=x_label, ylabel="held-out top-1 (%)")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)


def ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def signed(points):
    return "n/a (faster than every dense width)" if points is None else f"{points:+.1f} points"


def finished_points(out):
    """Every point of OUT with a result file, whichever command ran it (a --models subset reports the whole grid)."""
    found = []
    for name in sorted(os.listdir(os.path.join(out, "points")) if os.path.isdir(os.path.join(out, "points")) else ()):
        record = read_json(os.path.join(out, "points", name, POINT_FILE))
        if record:
            found.append(Point(record["model"], float(record["width"]), int(record["seed"])))
    return found


def report(points, args):
    """Times the finished points' files (these `points` and every other finished point of args.out) and writes
    the CSVs and the plot; returns the rows."""
    points = list(dict.fromkeys([*points, *finished_points(args.out)]))
    rows = [record for record in (read_json(p.file(args.out, POINT_FILE)) for p in points) if record]
    if not rows:
        print("no finished points to report")
        return rows
    time_files(rows, args)
    for row in rows:
        row["step_cpu_ms"] = step_cpu_ms(row)
    write_csv(os.path.join(args.out, "pareto.csv"), rows, FIELDS)
    summary = against_dense(summarize(rows))
    write_csv(os.path.join(args.out, "summary.csv"), summary,
              ["model", "width", "seeds", "recipe", *(f"{k}_{s}" for k in AVERAGED for s in ("mean", "std")),
               *COMPARISON_FIELDS])
    print(f"\n{'model':<24} {'width':>5} {'seeds':>5} {'Keras top-1':>14} {'int8 top-1':>14} {'float32 ms':>14} "
          f"{'int8 ms':>14} {'MAdds (dep.)':>12}")
    for e in summary:
        print(f"{e['model']:<24} {e['width']:>5g} {e['seeds']:>5} "
              f"{100 * e['keras_top1_mean']:>7.1f} ± {100 * e['keras_top1_std']:<4.1f} "
              f"{100 * e['int8_top1_mean']:>7.1f} ± {100 * e['int8_top1_std']:<4.1f} "
              f"{e['float32_ms_mean']:>7.3f} ± {e['float32_ms_std']:<5.3f}"
              f"{e['int8_ms_mean']:>7.3f} ± {e['int8_ms_std']:<5.3f} {e['madds_deployed_mean'] / 1e6:>11.1f}M")
    for e in summary:
        if e["model"] in COMPARED:
            print(f"{e['model']} {e['width']:g} against {DENSE_REFERENCE}: " + "; ".join(
                f"{precision} latency {ratio(e[f'{precision}_ms_vs_dense'])} of the same width, top-1 "
                f"{signed(e[f'{precision}_top1_vs_dense'])} at equal latency" for precision in PRECISIONS)
                + f"; a training step {ratio(e['step_vs_dense'])} of the same width's")
    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed: no plot")
        return rows
    budget = f"{args.epochs} epoch(s)" if args.epochs else f"{args.budget_cpu_minutes:g} CPU-min each"
    plot(summary, os.path.join(args.out, "pareto.png"), budget)
    print(f"wrote {os.path.join(args.out, 'pareto.csv')}, summary.csv and pareto.png")
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--out", default=DEFAULT_OUT, help="run directories, exports, CSVs and plot")
    parser.add_argument("--models", nargs="+", default=None, help="default: every model of GRID")
    parser.add_argument("--widths", nargs="+", type=float, default=None, help="default: each model's GRID widths")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget-cpu-minutes", type=float, default=5.0, help="training CPU per point")
    parser.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of fitting the budget")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="cap on steps per epoch (smoke runs)")
    parser.add_argument("--jobs", type=int, default=2, help="points trained side by side, one process each")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow and LiteRT threads per process")
    parser.add_argument("--runs", type=int, default=100, help="timed invokes per file (median)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--recipe", default=None, help="this preset for every point instead of RECIPES' choice")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="an override of every point's recipe, after the split's (repeatable); a variant of a "
                        "recipe gets its own --out, since the probes there are timed with its settings")
    parser.add_argument("--point", nargs=3, metavar=("MODEL", "WIDTH", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)
    args.data = os.path.abspath(args.data)
    return args


def main(argv=None):
    args = parse_args(argv)
    if not os.path.exists(args.data):
        print(f"error: {args.data} not found (the real-data sample lives in ../shared/data)", file=sys.stderr)
        return 2
    from mobilenets import list_models

    unknown = [model for model in args.models or () if model not in list_models()]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; choose from {', '.join(list_models())}", file=sys.stderr)
        return 2
    if args.point:
        run_point(Point(args.point[0], float(args.point[1]), int(args.point[2])), args)
        return 0
    points = grid(args)
    failed = run_jobs(points, args)
    report(points, args)
    if failed:
        print(f"{len(failed)} point(s) failed: {', '.join(failed)} (see their log.txt; run again to retry)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Training curves of one or more runs, from their log.csv, as one PNG.

    mobilenets-plot RUN_DIR [RUN_DIR ...] [--output curves.png]

Panels: loss (training, and validation where logged), top-1 (training and validation), learning
rate and, for LGC runs, the masked fraction of the learned group convolutions; one colour per run,
so several runs compare side by side. Reads only log.csv (no TensorFlow); matplotlib draws
off-screen (Agg). The PNG is written atomically (mobilenets.io).
"""

import csv
import math
import os
import sys

from mobilenets.commands import cli
from mobilenets.errors import CheckpointError, ConfigError
from mobilenets.io import atomic_path

LOG_FILE = "log.csv"  # mobilenets.runs.LOG_FILE, spelled here: importing mobilenets.runs loads TensorFlow
# (panel title, [(column, line style)]): solid is training, dashed validation.
PANELS = (
    ("cross-entropy", [("cross_entropy", "-"), ("val_cross_entropy", "--")]),
    ("loss", [("loss", "-"), ("val_loss", "--")]),  # with the penalties and label smoothing
    ("top-1", [("accuracy", "-"), ("val_accuracy", "--")]),
    ("learning rate", [("learning_rate", "-")]),
    ("LGC sparsity", [("lgc_sparsity", "-")]),
)


def read_log(run_dir):
    """{column: [float or nan]} of RUN_DIR/log.csv; CheckpointError (one line) when it is missing or empty."""
    path = os.path.join(run_dir, LOG_FILE)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist: {run_dir} is not a training run, or no epoch finished") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CheckpointError(f"cannot read {path} ({error}); it is damaged") from None
    if not rows:
        raise CheckpointError(f"{path} has no epochs yet; plot it after the first epoch")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return math.nan

    return {column: [number(row.get(column)) for row in rows] for column in rows[0]}


def plot_runs(run_dirs, output):
    """Draws the curves of `run_dirs` into the PNG `output`; returns the panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = {run_dir: read_log(run_dir) for run_dir in run_dirs}
    panels = [(title, lines) for title, lines in PANELS if any(c in log for log in logs.values() for c, _ in lines)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for axis, (title, lines) in zip(axes[0], panels):
        for index, (run_dir, log) in enumerate(logs.items()):
            label = os.path.basename(os.path.normpath(run_dir))
            for column, style in lines:
                if column in log:
                    axis.plot(log["epoch"], log[column], style, color=f"C{index}",
                              label=f"{label} {'validation' if column.startswith('val_') else 'training'}")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if title == "learning rate":
            axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(output, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    return [title for title, _ in panels]


def main(argv=None):
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training run directories (with log.csv)")
    parser.add_argument("--output", "-o", help="PNG to write (default: RUN_DIR/curves.png of the first run)")
    args = parser.parse_args(argv)

    def plot():
        output = args.output or os.path.join(args.run_dirs[0], "curves.png")
        if not output.lower().endswith(".png"):
            raise ConfigError(f"--output must be a .png file, got {output}")
        panels = plot_runs(args.run_dirs, output)
        print(f"wrote {output} ({', '.join(panels)} of {len(args.run_dirs)} run{'s' if len(args.run_dirs) > 1 else ''})")

    return cli.run(plot)


if __name__ == "__main__":
    sys.exit(main())

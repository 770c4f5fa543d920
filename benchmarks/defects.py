"""How strong the test suite is, not only how big: deliberate defects, each put into a copy of the
repository, and whether the tests picked to guard that code fail (issue 31).

    nice -n 10 python benchmarks/defects.py --tree /tmp/defects-before --label before --allow-na
    nice -n 10 python benchmarks/defects.py --tree . --label after

    python benchmarks/defects.py --list                            # the defects and their tests
    python benchmarks/defects.py --tree . --label after --dry-run  # which apply to the tree, no test run
    python benchmarks/defects.py --tree . --label after --defects npz_labels_shuffled --redo

Each defect is one exact string replacement in one file, applied to a fresh copy of the tree's
files (git-tracked plus untracked-but-not-ignored, as they are on disk; a worktree of an older
commit: `git worktree add --detach /tmp/defects-before COMMIT`). A replacement whose string is not
in the tree, exactly once, is reported as "n/a (code not in this tree)" and makes the run exit 1
unless --allow-na (for older trees): a later tree that lost the string needs its defect updated.
The selected tests (pytest node ids; a function without [params] means all its params) run in the
copy with `pytest -n 0 -x -q`, from the copy's root with PYTHONPATH=<copy> (the package is installed
editable from the main checkout: the copy's own `mobilenets` is checked to be the one imported) and
MOBILENETS_OFFLINE=1. Caught: a selected test fails (or errors); not caught: all pass.

Once per tree, the unmodified copy runs every selected test: a test missing from the tree, skipped or
failing there is left out of its defect's selection (reported in `detail`); a defect left with no test
is n/a. Results: benchmarks/results/defects/<label>.csv (defect, file, tests, caught, seconds,
cpu_seconds, detail), one row written as each defect finishes; re-running skips the defects already
in the csv (--redo runs them again); <label>.json holds the tree, its commit and the baseline;
<label>-logs/<defect>.log the end of each pytest output.
"""

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results", "defects")
COLUMNS = ("defect", "file", "tests", "caught", "seconds", "cpu_seconds", "detail")
NA_CODE = "n/a (code not in this tree)"
NA_TESTS = "n/a (no selected test runs and passes in this tree)"
LOG_TAIL = 120  # lines of each pytest output kept in <label>-logs/


@dataclasses.dataclass(frozen=True)
class Defect:
    name: str
    file: str
    old: str
    new: str
    tests: tuple
    what: str


J = "tests/test_journeys.py::"
JOURNEY_A = J + "test_a_photos_finetune_evaluate_export_mediapipe_predict"
JOURNEY_C = J + "test_c_npz_train*"  # test_c_npz_train_evaluate_predict before issue 30 renamed it

DEFECTS = [
    # ---- 1. labels shuffled against images, in each data source
    Defect(
        "folder_labels_shuffled", "mobilenets/data/folder.py",
        "examples = tf.data.Dataset.from_tensor_slices((scan.paths, scan.labels))",
        "examples = tf.data.Dataset.from_tensor_slices((scan.paths, np.random.default_rng(0).permutation(scan.labels)))",
        ("tests/test_data_pipelines.py::test_folder_tree_eval_matches_decoded_jpeg_and_png", JOURNEY_A),
        "a folder tree's labels permuted against its image paths (every split)"),
    Defect(
        "npz_labels_shuffled", "mobilenets/data/npz.py",
        "return in_memory_source(x[indices], y[indices], request.data_dir)",
        "return in_memory_source(x[indices], y[np.random.default_rng(split_seed).permutation(indices)], "
        "request.data_dir)",
        ("tests/test_data_pipelines.py::test_npz_splits_are_disjoint_seeded_and_exact", JOURNEY_C),
        "an npz split's labels taken in another order than its images"),
    Defect(
        "cifar_labels_shuffled", "mobilenets/data/cifar.py",
        "labels = np.concatenate([a[1] for a in arrays])",
        "labels = np.random.default_rng(0).permutation(np.concatenate([a[1] for a in arrays]))",
        ("tests/test_data_pipelines.py::test_cifar10_python_eval_returns_stored_pixels",
         "tests/test_data_pipelines.py::test_cifar10_binary_eval_returns_stored_pixels",
         "tests/test_data_pipelines.py::test_cifar100_python_and_binary_use_fine_labels"),
        "a local CIFAR copy's labels permuted against its images"),
    # ---- 2. BatchNorm folded wrongly
    Defect(
        "mqa_batchnorm_fold_without_gamma", "mobilenets/deploy/flatten.py",
        "factor = gamma / (variance + layer.norm.epsilon) ** 0.5",
        "factor = 1.0 / (variance + layer.norm.epsilon) ** 0.5",
        ("tests/test_mobilenetv4.py::test_flat_graph_of_the_hybrid_computes_the_same",),
        "Mobile MQA's input BatchNorm folded into a 1x1 depthwise conv without its gamma (QAT's flat graph)"),
    Defect(
        "hswish_fold_residual_beta_unscaled", "mobilenets/deploy/folding.py",
        "layer.project.bn.set_weights([gamma * scale, beta * scale, *statistics])",
        "layer.project.bn.set_weights([gamma * scale, beta, *statistics])",
        ("tests/test_deploy.py::test_hard_swish_scale_folds_into_the_next_kernels_exactly",
         "tests/test_deploy.py::test_flat_graph_of_the_folded_v3_computes_the_same"),
        "int8 V3 h-swish fold: the projection BatchNorm before a scaled residual add scales gamma but not beta"),
    # ---- 3. an LGC mask off by one group
    Defect(
        "lgc_mask_off_by_one_group", "mobilenets/models/layers.py",
        "mask[weakest, group :: self.groups] = 0.0",
        "mask[weakest, (group + 1) % self.groups :: self.groups] = 0.0",
        ("tests/test_layers.py::test_learned_group_conv_lasso_and_condensation",
         "tests/test_train.py::test_lgc_model_condenses_to_one_over_c_and_keeps_learning_after_each_stage"),
        "condensation drops group g's weakest inputs from the outputs of group g + 1"),
    Defect(
        "condensation_schedule_off_by_one", "mobilenets/models/condensation.py",
        "for k in range(1, stages + 1)]",
        "for k in range(stages)]",
        ("tests/test_train.py::test_condensation_steps_follow_the_chosen_schedule",),
        "CondenseNet's schedule one stage early (the first at step 0)"),
    # ---- 4. int8 calibrated on zeros
    Defect(
        "int8_calibrated_on_zeros", "mobilenets/deploy/export.py",
        "converter.representative_dataset = lambda: ([image[None]] for image in calibration_images)",
        "converter.representative_dataset = lambda: ([np.zeros_like(image[None])] for image in calibration_images)",
        ("tests/test_export.py::test_int8_agrees_with_float_model",
         "tests/test_deploy.py::test_xnnpack_runs_every_op_of_every_deployed_model_in_int8[mobilenetv1]"),
        "the converter's representative dataset yields zeros instead of the calibration images"),
    # ---- 5. the wrong normalization constants in the exported file
    Defect(
        "metadata_normalization_127_5", "mobilenets/deploy/metadata.py",
        'if dtype == "float32" or not quantization:\n        return 0.0, 1.0',
        'if dtype == "float32" or not quantization:\n        return 127.5, 127.5',
        ("tests/test_mediapipe.py::test_metadata_follows_the_schema",
         "tests/test_mediapipe.py::test_mediapipe_classifies_like_keras[float32]"),
        "a float32 file's TFLite metadata declares mean 127.5, std 127.5 (the model normalizes raw pixels itself)"),
    # ---- 6. a checkpoint restored from the wrong step
    Defect(
        "resume_from_oldest_checkpoint", "mobilenets/training/checkpointing.py",
        "for path in reversed(self._last.checkpoints or [self.latest]):",
        "for path in self._last.checkpoints or [self.latest]:",
        ("tests/test_faults.py::test_damaged_latest_checkpoint_resumes_from_the_one_before",
         "tests/test_train.py::test_run_killed_at_three_random_points_resumes_each_time_and_ends_with_the_"
         "uninterrupted_weights"),
        "resume restores the oldest kept checkpoint instead of the newest"),
    # ---- 7. the float softmax dropped after int8
    Defect(
        "int8_float_softmax_dropped", "mobilenets/deploy/export.py",
        "return append_float_softmax(flatbuffer) if softmax_after else flatbuffer",
        "return flatbuffer",
        ("tests/test_mediapipe.py::test_mediapipe_classifies_like_keras[int8]",
         "tests/test_deploy.py::test_xnnpack_runs_every_op_of_every_deployed_model_in_int8[mobilenetv1]"),
        "an int8 file with float output gives logits, not probabilities"),
    # ---- 8. precise BatchNorm statistics off
    Defect(
        "precise_bn_default_off", "hparams/config.py",
        "precise_bn_images: int = 1024",
        "precise_bn_images: int = 0",
        (JOURNEY_C, JOURNEY_A),
        "precise BatchNorm off by default: validation, export and predict on the moving averages"),
    Defect(
        "precise_bn_momentum_kept", "mobilenets/training/precise_bn.py",
        "layer.momentum = 0.0  # read when the forward pass is traced (or run eagerly)",
        "pass",
        ("tests/test_learning.py::test_precise_bn_sets_the_average_of_the_batch_statistics", JOURNEY_C),
        "precise BN runs its batches at the layers' own momentum: the statistics barely move"),
    # ---- 9. the "at chance" warning never printed
    Defect(
        "chance_warning_never_printed", "mobilenets/learning.py",
        "if not images or not at_chance(top1, num_classes, images):",
        "if images or not at_chance(top1, num_classes, images):",
        ("tests/test_learning.py::test_chance_and_its_band",
         "tests/test_learning.py::test_labels_that_do_not_match_the_images_end_with_a_line_that_says_chance"),
        "chance_warning returns None whenever images were scored"),
    # ---- 10. the small-data batch fitting off
    Defect(
        "small_data_batch_halved_too_far", "mobilenets/training/settings.py",
        "fitted // 2 >= MIN_BATCH_SIZE",
        "fitted >= MIN_BATCH_SIZE",
        ("tests/test_learning.py::test_a_small_dataset_gets_a_batch_that_gives_it_steps",
         "tests/test_learning.py::test_an_npz_file_holds_out_its_share_and_fits_its_batch", JOURNEY_C),
        "_batch_fitted_to_data halves once more, below MIN_BATCH_SIZE"),
    # ---- our own, in other stages
    Defect(
        "training_pairs_shuffled_apart", "mobilenets/data/pipeline.py",
        "shuffled = examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)",
        "shuffled = tf.data.Dataset.zip((examples.map(lambda r, l: r).shuffle(buffer, seed=seed, "
        "reshuffle_each_iteration=True), examples.map(lambda r, l: l).shuffle(buffer, seed=seed + 1, "
        "reshuffle_each_iteration=True)))",
        (JOURNEY_C,),
        "training batches shuffle records and labels separately (evaluation order untouched)"),
    Defect(
        "confusion_matrix_transposed", "mobilenets/evaluation.py",
        "np.add.at(confusion, (labels, ranking[:, 0]), 1)",
        "np.add.at(confusion, (ranking[:, 0], labels), 1)",
        ("tests/test_evaluate.py::test_evaluate_counts_top1_top5_and_loss",
         "tests/test_run_data.py::test_folder_run_is_evaluated_on_the_images_it_held_out_with_per_class_results"),
        "evaluate's confusion matrix [prediction, true class] instead of [true class, prediction]"),
    Defect(
        "predict_ignores_run_crop", "mobilenets/commands/predict.py",
        "crop_fraction = (data and data.eval_crop_fraction) or default_crop_fraction(predictor.input_shape)",
        "crop_fraction = default_crop_fraction(predictor.input_shape)",
        ("tests/test_predict.py::test_saved_model_inside_a_run_takes_its_labels_and_crop",
         "tests/test_predict.py::test_probabilities_are_the_softmax_of_the_keras_logits_on_the_center_crop"),
        "predict crops a run's images by the input size's default, not the run's eval_crop_fraction"),
    Defect(
        "ema_not_swapped_for_validation", "mobilenets/training/ema.py",
        "def on_test_begin(self, logs=None):\n        if not self.swapped:",
        "def on_test_begin(self, logs=None):\n        if self.swapped:",
        ("tests/test_ema.py::test_run_average_is_the_closed_form_of_its_steps_and_training_is_unchanged",
         "tests/test_ema.py::test_validation_best_evaluation_and_export_use_the_averaged_weights"),
        "validation (and so best/) measures the trained weights, not their average"),
    Defect(
        "timm_depthwise_kernel_transposed", "mobilenets/models/timm_weights.py",
        "return value.transpose(2, 3, 0, 1)",
        "return value.transpose(3, 2, 0, 1)",
        ("tests/test_timm_weights.py::test_logits_equal_timms",),
        "timm's depthwise kernels loaded with kh and kw swapped (same shapes for square kernels)"),
]


# ---------------------------------------------------------------- the copy of a tree


def tree_files(tree):
    """Paths (relative) of the tree's git-tracked and untracked-but-not-ignored files that exist on disk."""
    out = subprocess.run(["git", "-C", tree, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True).stdout.decode()
    return sorted({p for p in out.split("\0") if p and os.path.isfile(os.path.join(tree, p))})


def tree_description(tree):
    def git(*args):
        return subprocess.run(["git", "-C", tree, *args], capture_output=True, text=True).stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {"tree": os.path.abspath(tree), "commit": git("rev-parse", "HEAD"),
            "subject": git("log", "-1", "--format=%s")[:120], "uncommitted": changed}


def snapshot(tree, destination):
    """Copies the tree's files into `destination`; returns a fingerprint of their contents."""
    digest = hashlib.sha256()
    for path in tree_files(tree):
        target = os.path.join(destination, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(tree, path), target)
        with open(target, "rb") as f:
            digest.update(path.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    with open(os.path.join(destination, PLUGIN + ".py"), "w") as f:
        f.write(PLUGIN_SOURCE)
    return digest.hexdigest()[:16]


def applies(defect, root):
    """None when the defect's string is in its file exactly once, else why not."""
    path = os.path.join(root, defect.file)
    if not os.path.isfile(path):
        return f"{defect.file} does not exist"
    with open(path) as f:
        count = f.read().count(defect.old)
    return None if count == 1 else f"{defect.old!r} occurs {count} times in {defect.file}"


def apply(defect, root):
    reason = applies(defect, root)
    if reason:
        raise SystemExit(f"defect {defect.name}: {reason}")
    path = os.path.join(root, defect.file)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace(defect.old, defect.new))


# ---------------------------------------------------------------- pytest in a copy

PLUGIN = "_defects_outcomes"
PLUGIN_SOURCE = '''"""Written by benchmarks/defects.py into its copies: each test's outcome, as JSON."""
import json
import os

_outcomes = {}


def pytest_collectreport(report):
    if report.failed:
        _outcomes[report.nodeid or "<collection>"] = "error"


def pytest_collection_finish(session):
    if os.environ.get("DEFECTS_COLLECT_ONLY"):
        for item in session.items:
            _outcomes[item.nodeid] = "collected"


def pytest_runtest_logreport(report):
    before = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = "failed" if report.when == "call" else "error"
    elif report.skipped and before not in ("failed", "error"):
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and before is None:
        _outcomes[report.nodeid] = "passed"


def pytest_sessionfinish(session):
    with open(os.environ["DEFECTS_OUTCOMES"], "w") as f:
        json.dump(_outcomes, f)
'''


def environment(root, outcomes, collect_only=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(PYTHONPATH=root, MOBILENETS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1", TF_CPP_MIN_LOG_LEVEL="2",
               DEFECTS_OUTCOMES=outcomes)
    if collect_only:
        env["DEFECTS_COLLECT_ONLY"] = "1"
    return env


def check_import(root):
    """SystemExit unless `import mobilenets` (and hparams) in `root` with PYTHONPATH=root is the copy's."""
    code = "import hparams, mobilenets; print(mobilenets.__file__); print(hparams.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=environment(root, os.devnull),
                         capture_output=True, text=True)
    files = out.stdout.split()
    if out.returncode or len(files) != 2 or not all(f.startswith(os.path.join(root, "")) for f in files):
        raise SystemExit(f"the copy at {root} does not import its own package: {out.stdout} {out.stderr[-500:]}")


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pytest(root, args, timeout, collect_only=False):
    """(exit code or 'timeout', {nodeid: outcome}, output, wall seconds, CPU seconds) of pytest in `root`."""
    outcomes = os.path.join(root, ".defects_outcomes.json")
    if os.path.exists(outcomes):
        os.remove(outcomes)
    command = [sys.executable, "-m", "pytest", "-n", "0", "-q", "-rfE", "-p", "no:cacheprovider", "-p", PLUGIN,
               *args]
    start, cpu = time.time(), cpu_of_children()
    process = subprocess.Popen(command, cwd=root, env=environment(root, outcomes, collect_only),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = "timeout"
    seconds, cpu = time.time() - start, cpu_of_children() - cpu
    found = {}
    if os.path.exists(outcomes):
        with open(outcomes) as f:
            found = json.load(f)
    return code, found, output, seconds, cpu


def selected(spec, collected):
    """The collected node ids a selection names: itself, all its [params], or a prefix ending in '*'."""
    if spec.endswith("*"):
        return [n for n in collected if n.startswith(spec[:-1])]
    return [n for n in collected if n == spec or n.startswith(spec + "[")]


# ---------------------------------------------------------------- the sweep


def read_rows(path):
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        return {row["defect"]: row for row in csv.DictReader(f)}


def write_rows(path, rows):
    order = [d.name for d in DEFECTS]
    with open(path + ".tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        for name in sorted(rows, key=lambda n: order.index(n) if n in order else len(order)):
            writer.writerow({k: rows[name].get(k, "") for k in COLUMNS})
    os.replace(path + ".tmp", path)


def save_log(label, name, output):
    folder = os.path.join(RESULTS, f"{label}-logs")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{name}.log"), "w") as f:
        f.write("\n".join(output.splitlines()[-LOG_TAIL:]) + "\n")


def baseline(pristine, defects, state, fingerprint, args, log):
    """{spec: [node ids that pass unmodified]} and {spec: why some are left out}: each selection is collected
    and run once per tree contents (kept in the state, so that a resumed or partial run adds only new ones)."""
    specs = sorted({spec for d in defects for spec in d.tests})
    cached = state.get("baseline", {})
    if cached.get("fingerprint") != fingerprint or args.redo_baseline:
        cached = {"fingerprint": fingerprint, "usable": {}, "left_out": {}, "seconds": 0, "cpu_seconds": 0}
    missing = [spec for spec in specs if spec not in cached["usable"]]
    if not missing:
        log(f"baseline: known for this tree's contents ({fingerprint})")
        return cached["usable"], cached["left_out"]
    files = sorted({spec.split("::")[0] for spec in missing})
    present = [f for f in files if os.path.isfile(os.path.join(pristine, f))]
    log(f"baseline: collecting {len(present)} test files")
    _, collected, output, _, _ = pytest(pristine, ["--collect-only", *present], args.timeout, collect_only=True)
    errors = {n for n, o in collected.items() if o == "error"}
    ids = [n for n, o in collected.items() if o == "collected"]
    usable, left_out, run = {}, {}, []
    for spec in missing:
        file = spec.split("::")[0]
        matches = selected(spec, ids)
        if not matches:
            why = ("file not in this tree" if file not in present else
                   "file does not collect" if any(e.startswith(file) for e in errors) else "test not in this tree")
            left_out[spec] = why
        usable[spec] = matches
        run += [m for m in matches if m not in run]
    log(f"baseline: running {len(run)} selected tests unmodified")
    code, outcomes, output, seconds, cpu = pytest(pristine, run, args.timeout) if run else (0, {}, "", 0.0, 0.0)
    save_log(args.label, "_baseline", output)
    log(f"baseline: exit {code} in {seconds:.0f} s ({cpu:.0f} CPU-s)")
    for spec, matches in usable.items():
        bad = {m: outcomes.get(m, "not run") for m in matches if outcomes.get(m) != "passed"}
        if bad:
            left_out[spec] = "unmodified: " + ", ".join(f"{m.split('::')[-1]} {o}" for m, o in bad.items())
        usable[spec] = [m for m in matches if m not in bad]
    cached["usable"].update(usable)
    cached["left_out"] = {**{k: v for k, v in cached["left_out"].items() if k not in usable}, **left_out}
    cached["seconds"] += round(seconds)
    cached["cpu_seconds"] += round(cpu)
    state["baseline"] = cached
    return cached["usable"], cached["left_out"]


def run_defect(defect, pristine, work, usable, left_out, args):
    """The csv row of one defect."""
    row = {"defect": defect.name, "file": defect.file, "tests": " ".join(defect.tests), "seconds": "",
           "cpu_seconds": ""}
    reason = applies(defect, pristine)
    if reason:
        return {**row, "caught": NA_CODE, "detail": reason}
    tests = [n for spec in defect.tests for n in usable.get(spec, [])]
    notes = [f"{spec.split('::')[-1]}: {left_out[spec]}" for spec in defect.tests if spec in left_out]
    if not tests:
        return {**row, "caught": NA_TESTS, "detail": "; ".join(notes)}
    if os.path.exists(work):
        shutil.rmtree(work)
    shutil.copytree(pristine, work, symlinks=True)
    apply(defect, work)
    check_import(work)
    code, outcomes, output, seconds, cpu = pytest(work, ["-x", *tests], args.timeout)
    save_log(args.label, defect.name, output)
    failed = [n for n in tests if outcomes.get(n) in ("failed", "error")]
    collection = [n for n, o in outcomes.items() if o == "error" and n not in tests]
    if code == "timeout":
        caught, detail = "timeout", f"over {args.timeout} s"
    elif failed or collection or code in (1, 2):
        caught = "yes"
        detail = "failed: " + ", ".join(n.split("::", 1)[-1] for n in failed or collection or ["(see log)"])
    elif code == 0 and all(outcomes.get(n) == "passed" for n in tests):
        caught, detail = "no", f"{len(tests)} passed"
    else:
        caught, detail = f"error (pytest exit {code})", ", ".join(f"{n}: {o}" for n, o in outcomes.items())[:300]
    detail = "; ".join([detail, *notes])
    return {**row, "caught": caught, "seconds": f"{seconds:.0f}", "cpu_seconds": f"{cpu:.0f}", "detail": detail}


def format_table(rows):
    lines = [f"{'defect':36} {'caught':>8} {'s':>5}  file"]
    for defect in DEFECTS:
        row = rows.get(defect.name)
        if row:
            caught = row["caught"] if len(row["caught"]) <= 8 else row["caught"][:3]
            lines.append(f"{defect.name:36} {caught:>8} {row['seconds'] or '-':>5}  {row['file']}")
    done = [r for r in rows.values() if r["caught"] in ("yes", "no")]
    caught = sum(r["caught"] == "yes" for r in done)
    na = sum(r["caught"].startswith("n/a") for r in rows.values())
    seconds = sum(float(r["seconds"] or 0) for r in rows.values())
    cpu = sum(float(r["cpu_seconds"] or 0) for r in rows.values())
    lines.append(f"caught {caught} of {len(done)} applicable defects ({na} n/a); sweep {seconds:.0f} s, "
                 f"{cpu:.0f} CPU-s")
    missed = [r["defect"] for r in done if r["caught"] == "no"]
    if missed:
        lines.append("not caught: " + ", ".join(missed))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=REPO, help="the repository tree to copy (default: this one)")
    parser.add_argument("--label", help="names the run: benchmarks/results/defects/LABEL.csv")
    parser.add_argument("--defects", nargs="+", metavar="NAME", help="only these defects")
    parser.add_argument("--redo", action="store_true", help="run the chosen defects again even if in the csv")
    parser.add_argument("--redo-baseline", action="store_true", help="run the unmodified tests again")
    parser.add_argument("--allow-na", action="store_true", help="exit 0 even when a defect's code is not in the tree")
    parser.add_argument("--dry-run", action="store_true", help="say which defects apply to the tree; run nothing")
    parser.add_argument("--list", action="store_true", help="print the defects and their tests")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one pytest run may take")
    parser.add_argument("--work-dir", help="where the copies go (default: a new folder under the temp dir)")
    args = parser.parse_args(argv)
    if args.list:
        for d in DEFECTS:
            print(f"{d.name}  ({d.file}): {d.what}\n    " + "\n    ".join(d.tests))
        return 0
    unknown = sorted(set(args.defects or ()) - {d.name for d in DEFECTS})
    if unknown:
        parser.error(f"unknown defects {unknown}; --list shows them")
    defects = [d for d in DEFECTS if not args.defects or d.name in args.defects]
    tree = os.path.abspath(args.tree)
    if args.dry_run:
        for d in defects:
            print(f"{d.name:36} {applies(d, tree) or 'applies'}")
        return 0
    if not args.label:
        parser.error("--label is required to run")
    if os.nice(0) < 10:
        os.nice(10 - os.nice(0))  # other work needs the CPU

    def log(text):
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    os.makedirs(RESULTS, exist_ok=True)
    csv_path, state_path = (os.path.join(RESULTS, f"{args.label}.{ext}") for ext in ("csv", "json"))
    state = json.load(open(state_path)) if os.path.exists(state_path) else {}
    rows = read_rows(csv_path)
    todo = [d for d in defects if args.redo or d.name not in rows]
    base = args.work_dir or tempfile.mkdtemp(prefix=f"defects-{args.label}-")
    pristine, work = os.path.join(base, "pristine"), os.path.join(base, "work")
    if os.path.exists(pristine):
        shutil.rmtree(pristine)
    os.makedirs(pristine)
    fingerprint = snapshot(tree, pristine)
    check_import(pristine)
    state.update(tree_description(tree), fingerprint=fingerprint, started=time.strftime("%Y-%m-%d %H:%M:%S"))
    log(f"{tree} at {state['commit'][:9]} ({len(state['uncommitted'])} uncommitted paths), copied to {pristine}; "
        f"{len(todo)} of {len(defects)} defects to run")
    try:
        if todo:
            usable, left_out = baseline(pristine, todo, state, fingerprint, args, log)
            with open(state_path, "w") as f:
                json.dump(state, f, indent=1)
        for defect in todo:
            rows[defect.name] = run_defect(defect, pristine, work, usable, left_out, args)
            write_rows(csv_path, rows)
            r = rows[defect.name]
            log(f"{defect.name}: caught {r['caught']} ({r['seconds'] or '-'} s) {r['detail'][:150]}")
    finally:
        if not args.work_dir:
            shutil.rmtree(base, ignore_errors=True)
    print(format_table(rows))
    print(f"wrote {os.path.relpath(csv_path, REPO)}")
    stale = [r["defect"] for r in rows.values() if r["caught"] == NA_CODE]
    if stale and not args.allow_na:
        print(f"error: the code of {', '.join(stale)} is not in {tree}: update those defects' strings",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

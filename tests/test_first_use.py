"""First use without surprises (issue 33): what a newcomer meets in the first minutes, each as the
command line shows it."""

from hparams import list_presets
from userdata import assert_ok, assert_one_line_error, run_cli


def test_the_offline_main_job_is_one_line(tmp_path):
    """`python train.py --model mobilenetv2_lgc` offline, where an earlier attempt left an empty tfds
    variant folder (tfds logs an absl warning about it): one line that says what to fetch."""
    (tmp_path / "tfds" / "cifar100" / "3.0.2").mkdir(parents=True)
    result = run_cli("train.py", "--model", "mobilenetv2_lgc", cwd=tmp_path, env={"TFDS_DATA_DIR": str(tmp_path / "tfds")})
    assert_one_line_error(result, "cannot reach", "cifar-100-python.tar.gz", "--data-dir")
    assert not (tmp_path / "runs").exists()


def test_presets_are_listed_one_line_each_and_described_on_request():
    listed = assert_ok(run_cli("train.py", "--list-presets")).stdout.splitlines()
    assert [line.split(":", 1)[0] for line in listed[:-1]] == list_presets()
    assert all(len(line) <= 120 for line in listed), max(listed, key=len)
    assert "--list-presets NAME" in listed[-1]
    whole = assert_ok(run_cli("train.py", "--list-presets", "cifar100_mobilenetv2_lgc")).stdout
    assert "76.30" in whole  # the seed's published top-1, in the whole description only
    assert_one_line_error(run_cli("train.py", "--list-presets", "nope"), "unknown preset 'nope'")


def test_an_npz_runs_test_split_is_the_part_it_held_out():
    from mobilenets.runs import DataSettings

    data = DataSettings("npz", "arrays.npz", options={"validation_fraction": 0.15}, from_run=True)
    assert data.describe("test", 9) == "npz test (held out: 0.15 of arrays.npz, 9 images)"
    assert data.describe("train", 51) == "npz train (the run trained on these: 0.85 of arrays.npz, 51 images)"


def test_evaluate_shows_its_stages_on_a_terminal_and_nothing_extra_in_a_pipe(tmp_path):
    """Long work is not silent where a person watches (a terminal), and adds nothing to a pipe."""
    import os
    import shutil
    import subprocess
    import sys

    from userdata import REPO

    run = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "fixtures" / "earlier_main" / "runs" / "mobilenetv2_lgc-synthetic-b7f59bd3", run)
    command = [sys.executable, str(REPO / "evaluate.py"), str(run), "--checkpoint", "last"]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    leader, follower = os.openpty()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=follower, env=environment, timeout=600)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    terminal = b"".join(chunks).decode()
    assert done.returncode == 0, terminal
    assert f"... loading {run}" in terminal and "... scoring synthetic" in terminal, terminal
    piped = assert_ok(run_cli("evaluate.py", run, "--checkpoint", "last"))
    assert "..." not in piped.stderr and "top-1" in piped.stdout


def test_int8_export_and_summary_show_their_stages_on_a_terminal(tmp_path, monkeypatch):
    """A line per stage where a person watches (stderr a terminal; they were silent for 20 s and 12 s). In a pipe
    nothing extra: test_cli_traps' int8 export and summary leave stderr empty."""
    import os
    import sys
    import threading

    from mobilenets.commands import export as export_command
    from mobilenets.commands import summary

    leader, follower = os.openpty()
    shown = []
    reader = threading.Thread(target=read_until, args=(leader, b"END", shown), daemon=True)
    reader.start()
    terminal = os.fdopen(follower, "w")
    monkeypatch.setattr(sys, "stderr", terminal)
    try:
        assert export_command.main([
            "mobilenetv2", "--width-multiplier", "0.35", "--input-size", "32", "--config", "cifar", "--num-classes",
            "10", "--quantize", "int8", "--representative-data", "synthetic", "--calibration-images", "8",
            "--parity-images", "4", "--latency-runs", "2", "-o", str(tmp_path / "m.tflite")]) == 0
        assert summary.main(["mobilenetv2", "--width", "0.35"]) == 0
        print("END", file=terminal, flush=True)
        reader.join(timeout=30)
    finally:
        monkeypatch.undo()
        terminal.close()
        os.close(leader)
    stages = [line for line in b"".join(shown).decode().splitlines() if line.startswith("... ")]
    assert stages == [
        "... loading TensorFlow", "... loading mobilenetv2", "... reading 8 calibration images of synthetic training "
        "split", "... converting to int8, calibrated on 8 images", "... checking the file against Keras on 4 images, "
        "timing 2 invokes", "... loading TensorFlow", "... building mobilenetv2 (1 of 1)"], stages


def read_until(descriptor, end, chunks):
    """Appends what is read from `descriptor` (a pseudo-terminal's leader) to `chunks` until `end` is shown."""
    import os

    while end not in b"".join(chunks):
        chunks.append(os.read(descriptor, 4096))

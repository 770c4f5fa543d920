"""The package as users install it (issue 22): a wheel built from the repository, installed into a
fresh virtualenv, imports and runs every console script from another directory."""

import os
import subprocess
import sys
import tomllib
import zipfile

from userdata import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def pins(path):
    """The requirement lines of a requirements file, comments dropped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return sorted(line for line in lines if line)


def run(*argv, cwd):
    result = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{argv}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def test_wheel_installs_with_the_pinned_dependencies_and_every_command_runs_from_elsewhere(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", REPO, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("mobilenets-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert "mobilenets/commands/train.py" in archive.namelist()
    requires = sorted(line.split(": ", 1)[1] for line in metadata.splitlines()
                      if line.startswith("Requires-Dist: ") and "extra ==" not in line)
    assert requires == pins(REPO / "requirements.txt")

    # The pinned dependencies are installed here already: the venv sees them, the wheel goes in alone.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path)
    bin_dir = venv / "bin"
    run(bin_dir / "pip", "install", "--quiet", "--no-deps", wheel, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    imported = run(bin_dir / "python", "-c", "import mobilenets, hparams; from mobilenets import build_model; "
                   "print(mobilenets.__file__)", cwd=elsewhere)
    assert imported.stdout.strip().startswith(str(venv))
    scripts = PYPROJECT["project"]["scripts"]
    assert {"mobilenets-train", "mobilenets-evaluate", "mobilenets-export", "mobilenets-predict",
            "mobilenets-summary", "mobilenets-tflite-info", "mobilenets-profile", "mobilenets-plot"} <= set(scripts)
    for script in scripts:
        shown = run(bin_dir / script, "--help", cwd=elsewhere)
        assert shown.stdout.startswith("usage: "), (script, shown.stdout[:300])
    summary = run(bin_dir / "mobilenets-summary", "mobilenetv2", "--width", "0.35", cwd=elsewhere)
    assert "mobilenetv2" in summary.stdout and not os.listdir(elsewhere)


def test_the_import_layers_hold():
    """The layer contract in .importlinter (import-linter): commands, evaluation, deploy, training, runs,
    data, models, each importing only from the layers below it; the plumbing from none of them."""
    result = subprocess.run(["lint-imports", "--config", str(REPO / ".importlinter")], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_configs_and_model_names_load_without_tensorflow():
    """hparams checks model names against the zoo, which holds no layers: `--help` and `--print-config` stay fast."""
    probe = ("import sys, hparams; from mobilenets.models import zoo; "
             "assert hparams.MODEL_NAMES == tuple(zoo.MODELS); print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"

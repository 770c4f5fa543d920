"""mobilenets-plot: a PNG of training curves from log.csv (issue 12)."""

import pathlib
import subprocess
import sys

from mobilenets.commands import plot

ROOT = pathlib.Path(__file__).resolve().parents[1]

LOG = """epoch,step,seconds,loss,accuracy,val_loss,val_accuracy,learning_rate,lgc_sparsity
1,10,1.0,2.3,0.10,2.2,0.12,0.1,0.0
2,20,1.0,1.9,0.30,2.0,0.25,0.05,0.5
3,30,1.0,1.5,0.45,1.8,0.33,0.0,0.75
"""


def test_plot_writes_a_png_of_several_runs_side_by_side(tmp_path, capsys):
    runs = []
    for name in ("lgc", "dense"):
        (tmp_path / name).mkdir()
        text = LOG if name == "lgc" else "\n".join(line.rsplit(",", 1)[0] for line in LOG.splitlines()) + "\n"
        (tmp_path / name / "log.csv").write_text(text)
        runs.append(str(tmp_path / name))
    assert plot.main([*runs, "--output", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "loss, top-1, learning rate, LGC sparsity of 2 runs" in capsys.readouterr().out
    assert plot.main([runs[1]]) == 0 and (tmp_path / "dense" / "curves.png").exists()  # default: beside the log


def test_plot_of_a_directory_without_a_log_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mobilenets.commands.plot", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "log.csv does not exist" in result.stderr
    assert not list(tmp_path.iterdir())


def test_model_plot_places_published_top1_and_parameters_against_multiply_adds(tmp_path, capsys):
    from mobilenets import list_models
    from mobilenets.commands import summary

    assert all(set(table) <= set(list_models()) for table in summary.PUBLISHED_TOP1.values())
    path = tmp_path / "models.png"
    assert summary.main(["mobilenetv2", "mobilenetv2_lgc", "--dataset", "cifar100", "--plot", str(path)]) == 0
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "mobilenetv2_lgc" in capsys.readouterr().out


def test_plot_reads_the_log_file_runs_write():
    from mobilenets import runs

    assert plot.LOG_FILE == runs.LOG_FILE

"""Atomic writes: a failed write never leaves a half file or loses the previous one."""

import errno
import json
import os

import pytest

from mobilenets import io
from mobilenets.errors import ConfigError


def test_write_json_replaces_atomically(tmp_path):
    path = tmp_path / "report.json"
    io.write_json(path, {"top1": 0.5})
    io.write_json(path, {"top1": 0.75})
    assert json.loads(path.read_text()) == {"top1": 0.75}
    assert os.listdir(tmp_path) == ["report.json"]


def test_failed_write_keeps_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("converter crashed")
    assert path.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_full_disk_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    io.write_json(path, {"epochs": 1})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        io.write_json(path, {"epochs": 2})
    assert json.loads(path.read_text()) == {"epochs": 1}
    assert os.listdir(tmp_path) == ["config.json"]


def test_directory_outputs_are_swapped_whole(tmp_path):
    path = tmp_path / "saved_model"
    for version in ("1", "2"):
        with io.atomic_path(path) as tmp:
            os.makedirs(tmp)
            (open(os.path.join(tmp, "version"), "w")).write(version)
    assert (path / "version").read_text() == "2"
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]


def test_reporting_write_errors_names_the_path_and_lets_our_own_errors_pass(tmp_path):
    path = tmp_path / "report.json"
    with pytest.raises(ConfigError) as refused:
        with io.reporting_write_errors(path):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert str(refused.value) == f"cannot write {path} (Permission denied); pick another path"
    full = io.WriteError(f"cannot write {path}: the disk is full (No space left on device; 0 bytes free in /)")
    with pytest.raises(io.WriteError) as raised:  # a WriteError is an OSError too: not wrapped a second time
        with io.reporting_write_errors(path):
            raise full
    assert raised.value is full

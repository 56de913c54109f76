"""A wheel carries the `evaluate` metric modules, and the loader finds them next to the installed package."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from compress_utils.metric_loading import METRIC_NAMES

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("alpine_hf", "compress_utils", "flab_hf", "model_cards", "xtc_hf", "optimum")


def test_wheel_ships_the_metric_modules(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(tmp_path / 'dist')!r}))"
    result = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = tmp_path / "dist" / result.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    for metric in METRIC_NAMES:
        assert f"compress_utils/metrics/{metric}/{metric}.py" in names
        assert f"compress_utils/metrics/{metric}/README.md" in names
    assert "compress_utils/metric_loading.py" in names
    assert not any(name.startswith("metrics/") for name in names)  # nothing outside a package

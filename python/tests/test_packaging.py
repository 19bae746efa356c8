"""``pip install ./python`` gives the snakepit_bridge package, the top-level
snakepit_bridge_pb2 module and a working ``snakepit-worker`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PYTHON_DIR

setuptools = pytest.importorskip("setuptools")


def _cannot_build() -> bool:
    """Whether this setuptools cannot build the wheel without build isolation:
    older than 64, or older than 70.1 (bdist_wheel built in) without ``wheel``."""
    parts = [int(part) if part.isdigit() else 0 for part in setuptools.__version__.split(".")[:2]]
    version = (parts + [0, 0])[:2]
    if version < [64, 0]:
        return True
    try:
        import wheel  # noqa: F401
    except ImportError:
        return version < [70, 1]
    return False


@pytest.mark.skipif(_cannot_build(), reason="needs setuptools >= 64 and wheel (see requirements-dev.txt)")
def test_pip_install_gives_the_package_and_the_snakepit_worker_command(tmp_path: Path) -> None:
    # A copy, so that the build's leftovers (build/, *.egg-info) stay out of the checkout.
    source = tmp_path / "source"
    shutil.copytree(
        PYTHON_DIR,
        source,
        ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info", ".*cache"),
    )
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
        env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_BREAK_SYSTEM_PACKAGES="1"),
    )  # fmt: skip
    assert (target / "snakepit_bridge" / "serve.py").is_file()
    assert (target / "snakepit_bridge" / "__main__.py").is_file()
    assert (target / "snakepit_bridge_pb2.py").is_file()
    assert not (target / "tests").exists() and not (target / "snakepit_showcase").exists()

    # Only the installed copy on the path, from a directory away from the checkout.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    script = target / "bin" / "snakepit-worker"
    assert script.is_file()
    shown = subprocess.run(
        [str(script), "serve", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert shown.returncode == 0, shown.stderr
    for flag in ("--adapter", "--listen", "--threads", "--tls-client-ca", "--token-file", "--health-listen", "--grace"):
        assert flag in shown.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import snakepit_bridge, snakepit_bridge_pb2; print(snakepit_bridge.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(target))

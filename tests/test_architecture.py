"""The package's layers are enforced by import-linter (`make lint`): the contract holds on the package,
and it breaks on an import cycle hidden inside a function."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", "--config", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""},
                          timeout=300)


def test_the_package_keeps_its_layers():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "broken" not in out.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_a_cycle_hidden_inside_a_function_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "analysis", tmp_path / "analysis", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "analysis" / "ode.py", "a") as f:
        f.write("\n\ndef _hidden():\n    from .engines import simulate  # engines imports ode\n"
                "    return simulate\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "analysis.ode is not allowed to import analysis.engines" in out.stdout


def test_physics_modules_cannot_import_machine_learning(tmp_path):
    shutil.copytree(ROOT / "analysis", tmp_path / "analysis", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "analysis" / "inversion.py", "a") as f:
        f.write("\n\ndef _hidden():\n    from sklearn.linear_model import Ridge\n    return Ridge\n")
    out = _lint(tmp_path)
    assert out.returncode != 0 and "analysis.inversion is not allowed to import sklearn" in out.stdout

"""The wheel and sdist that pyproject.toml builds: package data, entry point, extras, no warnings.

Built from a copy of the repository's tracked build inputs, so nothing is written into the work tree,
with the build backend of this environment (no download; a few seconds).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "src" / "geopurify"

_BUILD = """
import sys, warnings
from setuptools import build_meta as b
warnings.simplefilter("always")
wheel, sdist = b.build_wheel("dist"), b.build_sdist("dist")
print("BUILT", wheel, sdist)
"""


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("setuptools", minversion="77")
    root = tmp_path_factory.mktemp("dist") / "geopurify"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "_work", ".pytest_cache")
    for d in ("src", "tests", "docs", "benchmarks"):
        shutil.copytree(REPO / d, root / d, ignore=skip)
    for f in ("pyproject.toml", "README.md", "MANIFEST.in", "Makefile", "BENCHMARKS.md", "LICENSE"):
        shutil.copy2(REPO / f, root / f)
    proc = subprocess.run([sys.executable, "-c", _BUILD], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel, sdist = re.findall(r"^BUILT (\S+) (\S+)$", proc.stdout, re.M)[-1]
    return {"wheel": root / "dist" / wheel, "sdist": root / "dist" / sdist, "log": proc.stdout + proc.stderr}


def _package_files() -> list[str]:
    return sorted(str(p.relative_to(PKG.parent)) for p in PKG.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def test_wheel_holds_every_package_file_and_nothing_else(dists):
    """Data read at run time (labels/data/label_sets.json via importlib.resources) must be in the wheel."""
    with zipfile.ZipFile(dists["wheel"]) as z:
        names = set(z.namelist())
    files = _package_files()
    assert "geopurify/labels/data/label_sets.json" in files
    missing = [f for f in files if f not in names]
    assert not missing, f"not in the wheel: {missing}"
    stray = [n for n in names if not n.startswith(("geopurify/", "geopurify-"))]
    assert not stray, f"outside the package: {stray}"


def test_wheel_entry_point_and_extras_named_in_errors(dists):
    with zipfile.ZipFile(dists["wheel"]) as z:
        info = next(n.split("/")[0] for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        entry = z.read(f"{info}/entry_points.txt").decode()
        meta = z.read(f"{info}/METADATA").decode()
    assert re.search(r"^geopurify = geopurify\.cli:main$", entry, re.M), entry
    assert re.search(r"^License-Expression: MIT$", meta, re.M)
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", meta, re.M))
    # every `missing_dependency("pkg", "extra", ...)` names an extra that installs that package
    named = set(re.findall(r'missing_dependency\("([\w-]+)", "(\w+)"', "\n".join(
        p.read_text(encoding="utf-8") for p in PKG.rglob("*.py"))))
    assert named, "no missing_dependency calls found: the pattern is stale"
    for pkg, extra in sorted(named):
        assert extra in extras, (pkg, extra, extras)
        assert re.search(rf'^Requires-Dist: {re.escape(pkg)}\b.*extra == "{extra}"', meta, re.M | re.I), (pkg, extra)
        assert re.search(rf'^Requires-Dist: {re.escape(pkg)}\b.*extra == "all"', meta, re.M | re.I), (pkg, "all")


def test_sdist_builds_what_make_test_needs_and_no_shared_data(dists):
    with tarfile.open(dists["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for need in ("pyproject.toml", "README.md", "LICENSE", "Makefile", "tests/conftest.py", "docs/ARCHITECTURE.md",
                 "BENCHMARKS.md", "benchmarks/common.py", *("src/" + f for f in _package_files())):
        assert need in names, need
    assert not [n for n in names if "shared" in n.split("/") or "__pycache__" in n], "stray files in the sdist"


def test_license_text_is_shipped_in_the_wheel_and_sdist(dists):
    """pyproject declares MIT: the licence text itself must travel with both distributions."""
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 the geopurify contributors" in text
    with zipfile.ZipFile(dists["wheel"]) as z:
        shipped = [n for n in z.namelist() if re.fullmatch(r"geopurify-[^/]+\.dist-info/licenses/LICENSE", n)]
        assert shipped and z.read(shipped[0]).decode("utf-8") == text, z.namelist()
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert re.search(r"^License-File: LICENSE$", meta, re.M), meta[:2000]
    with tarfile.open(dists["sdist"]) as t:
        member = next(m for m in t.getmembers() if m.name.split("/", 1)[-1] == "LICENSE")
        assert t.extractfile(member).read().decode("utf-8") == text


def test_build_is_free_of_deprecation_warnings(dists):
    """setuptools stops building deprecated metadata (a TOML-table `license`) from 2027-02-18."""
    assert "deprecated" not in dists["log"].lower(), dists["log"][-3000:]


def test_readme_install_names_every_extra(dists):
    with zipfile.ZipFile(dists["wheel"]) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    install = (REPO / "README.md").read_text(encoding="utf-8").split("## Install", 1)[1].split("\n## ", 1)[0]
    for extra in re.findall(r"^Provides-Extra: (\S+)$", meta, re.M):
        assert re.search(rf"\b{extra}\b", install), f"README's Install section does not name the extra {extra!r}"

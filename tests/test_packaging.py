"""Packaging: the wheel ships the licence, the py.typed marker and the benchmarks (so
``ntkdyn bench`` runs from it); CITATION.cff, CHANGELOG.md and the README's PyPI description;
the public API type-checks with mypy (and mypy rejects code that misuses it)."""
import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ntkdyn

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ARXIV = {"2105.14301", "2010.01092", "2211.12345", "2402.05271"}


def _package_dirs() -> dict:
    """``{package: folder}`` as pyproject maps them (``ntkdyn.base -> base``, ...)."""
    return dict(PYPROJECT["tool"]["setuptools"]["package-dir"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source tree (the build leaves nothing here)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in set(_package_dirs().values()):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md", *PYPROJECT["project"]["license-files"]):
        shutil.copy(ROOT / name, src / name)
    import setuptools

    offline = int(setuptools.__version__.split(".")[0]) >= 77
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp), str(src)]
    res = subprocess.run(command + (["--no-build-isolation"] if offline else []),
                         capture_output=True, text=True)
    if res.returncode != 0:
        if offline:  # the build itself failed, not a download
            pytest.fail(f"the wheel does not build: {res.stderr[-2000:]}")
        pytest.skip("setuptools < 77 here and no index to fetch a newer one: "
                    f"{res.stderr.strip().splitlines()[-1:]}")
    built, = tmp.glob("ntkdyn-*.whl")
    return built


def test_wheel_ships_the_licence_the_typing_marker_and_the_benchmarks(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    info = next(n for n in names if n.endswith(".dist-info/METADATA")).split("/")[0]
    assert f"{info}/licenses/LICENSE" in names
    assert "ntkdyn/py.typed" in names
    assert {"ntkdyn/benchmarks/bench_ntk.py", "ntkdyn/benchmarks/_timing.py"} <= names
    header = metadata.split("\n\n", 1)[0]
    assert "License-Expression: MIT" in header and "License-File: LICENSE" in header
    assert "Classifier: Typing :: Typed" in header
    assert "Classifier: License ::" not in header  # PEP 639: the expression replaces them
    # no URL is published until one is true (no public repository or hosted docs yet)
    assert "Project-URL" not in header
    description = metadata.split("\n\n", 1)[1]
    assert "ntkdyn" in description and not _relative_images(description)


def test_bench_runs_from_the_installed_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import ntkdyn\n"
            "assert ntkdyn.__file__.startswith(sys.argv[1]), ntkdyn.__file__\n"
            "from ntkdyn.figures import cli\n"
            "sys.exit(cli.main(['bench', '--only', 'mode_dynamics', '--quick']))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "== bench_mode_dynamics" in res.stdout and "all five depths" in res.stdout


def test_licence_is_mit_and_named_by_pyproject():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the ntkdyn developers" in text
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"][0]  # PEP 639 support
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["ntkdyn"]
    assert (ROOT / "ntkdyn" / "py.typed").is_file()


def test_citation_cff_cites_ntkdyn_and_the_four_papers():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert str(cff["version"]) == ntkdyn.__version__ and cff["license"] == "MIT"
    assert cff["message"] and cff["title"].startswith("ntkdyn") and cff["authors"]
    refs = cff["references"]
    assert len(refs) == 4
    ids = set()
    for ref in refs:
        assert ref["title"] and isinstance(ref["year"], int) and ref["type"]
        assert all(a["family-names"] and a["given-names"] for a in ref["authors"])
        ids |= set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{5})", ref["url"]))
        assert ref["identifiers"][0]["value"] == f"10.48550/arXiv.{ref['url'].rsplit('/', 1)[1]}"
    assert ids == ARXIV
    families = {ref["authors"][0]["family-names"] for ref in refs}
    assert families == {"Shan", "Liu", "Goldwaser", "Beaglehole"}


def test_changelog_has_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in text and "## [Unreleased]" in text
    assert re.search(rf"^## \[{re.escape(ntkdyn.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text,
                     flags=re.M)


def _relative_images(markdown: str) -> list:
    targets = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", markdown)
    targets += re.findall(r"<img[^>]+src=[\"']([^\"']+)", markdown)
    return [t for t in targets if not t.startswith(("https://", "http://"))]


def test_readme_has_no_image_that_pypi_cannot_render():
    # the README is the PyPI description (pyproject readme): relative image paths break there
    assert PYPROJECT["project"]["readme"] == "README.md"
    assert _relative_images((ROOT / "README.md").read_text()) == []


def test_type_checkers_see_every_public_name():
    """``import ntkdyn`` loads its names lazily (``__getattr__``); the ``TYPE_CHECKING`` block
    imports each of them for mypy, and must name exactly ``_API``."""
    tree = ast.parse((ROOT / "ntkdyn" / "__init__.py").read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING")
    imported = {alias.asname or alias.name for node in block.body
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    sources = {alias.asname or alias.name: f"ntkdyn{'.' + node.module if node.module else ''}"
               for node in block.body if isinstance(node, ast.ImportFrom)
               for alias in node.names}
    assert imported == set(ntkdyn._API)
    assert {name: sources[name] for name in ntkdyn._API} == dict(ntkdyn._API)


GOOD = """\
import numpy as np

import ntkdyn

X = np.random.default_rng(0).standard_normal((8, 3))
Y = X[:, :1]
net = ntkdyn.MLP([3, 32, 1], activation="tanh")
params = net.init(0)
K = ntkdyn.empirical_ntk(net, params, X)
a: float = ntkdyn.alignment(K, Y, centered=True)
S: np.ndarray = ntkdyn.specialization(np.stack([K, K]), np.hstack([Y, -Y]))
traj: ntkdyn.Trajectory = ntkdyn.gradient_descent(net, params, X, Y, lr=0.1, steps=2)
losses: np.ndarray = traj.losses
act: ntkdyn.Activation = ntkdyn.ACTIVATIONS["relu"]
error: ntkdyn.DivergenceError = ntkdyn.DivergenceError(3, 1e9)
K_inf: np.ndarray = ntkdyn.infinite_nngp(net, X)
result: ntkdyn.Result = ntkdyn.run("ntk-width", config="smoke")
"""

BAD = """\
import numpy as np

import ntkdyn

X = np.zeros((4, 3))
net = ntkdyn.MLP([3, 8, 1])
a: str = ntkdyn.alignment(X @ X.T, X[:, :1])
b = ntkdyn.alignment(X @ X.T, X[:, :1], centered="yes")
t = ntkdyn.gradient_descent(net, net.init(0), X, X[:, :1], lr=0.1, steps="10")
e = ntkdyn.DivergenceError("three", 1.0)
r: int = ntkdyn.run("ntk-width")
"""


def test_public_api_type_checks_with_mypy(tmp_path):
    pytest.importorskip("mypy")
    # the installed layout (ntkdyn/base, ntkdyn/theory, ...) as links into the checkout: mypy
    # cannot follow the editable install's import hook
    pkg = tmp_path / "pkg"
    for package, folder in _package_dirs().items():
        target = pkg.joinpath(*package.split("."))
        target.parent.mkdir(parents=True, exist_ok=True)
        if package == "ntkdyn":
            target.mkdir(exist_ok=True)
            for item in (ROOT / folder).iterdir():
                if item.name != "__pycache__":
                    (target / item.name).symlink_to(item)
        else:
            target.symlink_to(ROOT / folder, target_is_directory=True)
    env = dict(os.environ, MYPYPATH=str(pkg))
    for name, code in (("good.py", GOOD), ("bad.py", BAD)):
        (tmp_path / name).write_text(code)

    def mypy(script):
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
             "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", script],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    good = mypy("good.py")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = mypy("bad.py")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    errors = {int(m) for m in re.findall(r"^bad\.py:(\d+): error", bad.stdout, flags=re.M)}
    assert errors == {7, 8, 9, 10, 11}, bad.stdout

"""The curated public surface: one namespace, every exported name imports, one-way layers."""
import importlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ntkdyn

PACKAGES = ["ntkdyn", "ntkdyn.base", "ntkdyn.theory", "ntkdyn.numerics", "ntkdyn.figures"]
ROOT = Path(__file__).resolve().parent.parent


def _run(code, cwd=None):
    return subprocess.run([sys.executable, "-c", code], check=True, cwd=cwd,
                          capture_output=True, text=True)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_imports(package):
    module = importlib.import_module(package)
    assert module.__all__, package
    for name in module.__all__:
        value = getattr(module, name, None)
        if value is None:
            value = importlib.import_module(f"{package}.{name}")
        assert value is not None, f"{package}.{name}"


def test_version_has_one_source():
    from importlib import metadata

    from ntkdyn.figures.storage import library_version
    assert ntkdyn.__version__ == metadata.version("ntkdyn") == library_version()
    out = subprocess.run([sys.executable, "-m", "ntkdyn", "--version"], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == f"ntkdyn {ntkdyn.__version__}"


def test_import_ntkdyn_is_cheap():
    out = _run("import sys, ntkdyn\n"
               "print(sorted(m for m in ('numpy', 'scipy', 'sympy', 'numba', 'matplotlib')"
               " if m in sys.modules))").stdout
    assert out.strip() == "[]"


def test_layers_import_one_way():
    """base imports no other layer; theory only base; numerics no figures; none matplotlib."""
    def loaded_after(package, forbidden):
        code = ("import sys, importlib, pkgutil\n"
                f"p = importlib.import_module({package!r})\n"
                "for m in pkgutil.iter_modules(p.__path__):\n"
                f"    importlib.import_module({package!r} + '.' + m.name)\n"
                "parts = [m.split('.') for m in sys.modules]\n"
                "names = {'.'.join(q[:2]) if q[0] == 'ntkdyn' else q[0] for q in parts}\n"
                f"print(sorted(names & set({forbidden!r})))\n")
        return _run(code).stdout.strip()

    assert loaded_after("ntkdyn.base", ["ntkdyn.theory", "ntkdyn.numerics", "ntkdyn.figures",
                                        "matplotlib", "sympy", "numba"]) == "[]"
    assert loaded_after("ntkdyn.theory", ["ntkdyn.numerics", "ntkdyn.figures",
                                          "matplotlib"]) == "[]"
    assert loaded_after("ntkdyn.numerics", ["ntkdyn.figures", "matplotlib"]) == "[]"


def test_local_modules_named_like_the_layers_do_not_shadow_them(tmp_path):
    for name in ("theory", "numerics", "figures", "base"):
        (tmp_path / f"{name}.py").write_text(
            f"raise ImportError('the local {name}.py was imported')\n")
    _run("import ntkdyn.numerics, ntkdyn.theory.relu_ntk\n"
         "from ntkdyn.numerics import MLP, empirical_ntk, gradient_descent\n", cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-m", "ntkdyn", "list"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "ntk-width" in res.stdout.split()
    script = Path(sys.executable).with_name("ntkdyn")
    if script.exists():
        res = subprocess.run([str(script), "list"], cwd=tmp_path, env=env, capture_output=True,
                             text=True)
        assert res.returncode == 0 and "ntk-width" in res.stdout.split(), res.stderr


def test_wheel_installs_only_the_ntkdyn_top_level(tmp_path):
    # build from a copy, so the build leaves nothing in the checkout
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("ntkdyn", "base", "theory", "numerics", "figures", "benchmarks"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                          "-w", str(tmp_path), str(src)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"could not build a wheel here: {res.stderr.strip().splitlines()[-1:]}")
    wheel, = tmp_path.glob("ntkdyn-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = next(n for n in names if n.endswith("top_level.txt"))
        assert zf.read(top_level).decode().split() == ["ntkdyn"]
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"ntkdyn"}
    for layer in ("base", "theory", "numerics", "figures"):
        assert f"ntkdyn/{layer}/__init__.py" in names


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]
    # the library example (the experiment-API block runs a whole experiment: tests/figures/test_api)
    code = next(block for block in blocks if "empirical_ntk(" in block)
    assert "from ntkdyn" in code
    exec(compile(code, "README.md", "exec"), {"print": lambda *a, **k: None})

"""The curated public surface: every exported name imports, and the lower layers stay light."""
import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["theory", "numerics", "figures"])
def test_every_exported_name_imports(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name, None)
        if value is None:
            value = importlib.import_module(f"{package}.{name}")
        assert value is not None, f"{package}.{name}"


def test_theory_and_numerics_never_import_matplotlib_or_figures():
    code = ("import sys, importlib, theory, numerics\n"
            "for name in theory.__all__: importlib.import_module('theory.' + name)\n"
            "bad = [m for m in sys.modules if m.startswith(('matplotlib', 'figures'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_theory_never_imports_numerics():
    code = ("import sys, importlib, theory\n"
            "for name in theory.__all__: importlib.import_module('theory.' + name)\n"
            "bad = [m for m in sys.modules if m.startswith('numerics')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)

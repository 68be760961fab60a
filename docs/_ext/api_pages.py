"""Sphinx extension: write the API reference pages (``docs/api/``) at build time.

One page per module of ``ntkdyn.base``, ``ntkdyn.theory`` and ``ntkdyn.numerics`` (found with
:mod:`pkgutil`, so a new module gets its page without editing the docs) and of the public,
non-experiment modules of ``ntkdyn.figures`` (the experiments have their own pages, see
``experiment_pages``), each an ``automodule`` with its members; a page per layer listing its
modules with their one-line summaries; and ``docs/api/index.rst`` with the curated top-level
names of :mod:`ntkdyn`. The generated ``.rst`` files are ignored by git (``docs/api/.gitignore``).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

LAYERS = {
    "ntkdyn.base": "Base: validation, activations, kernel-target metrics, losses, samplers",
    "ntkdyn.theory": "Theory: closed forms, derivations, ODEs, infinite-width kernels",
    "ntkdyn.numerics": "Numerics: finite networks, training, empirical kernels, Hessians",
    "ntkdyn.figures": "Figures: the experiment contract, registry, runner and storage",
}


def _summary(module) -> str:
    """The first line of a module's docstring (empty when it has none)."""
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _write(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (an unchanged page is not rebuilt)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def layer_modules(package: str) -> list[str]:
    """The public submodules of ``package`` to document, sorted by name.

    Private modules (a leading underscore) are left out, and so are the experiment modules of
    ``ntkdyn.figures`` listed in its registry.
    """
    pkg = importlib.import_module(package)
    names = sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                   if not m.name.startswith("_"))
    if package == "ntkdyn.figures":
        from ntkdyn.figures.registry import EXPERIMENT_MODULES
        names = [n for n in names if n not in EXPERIMENT_MODULES]
    return names


def defined_names(module) -> list[str]:
    """The names a module defines at its top level (functions, classes, assignments), in
    source order; imported names are not among them."""
    tree = ast.parse(inspect.getsource(module))
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return list(dict.fromkeys(names))


def module_members(name: str) -> tuple[list[str], list[str]]:
    """``(documented, re-exported)`` public names of a module.

    The public names are ``__all__``, or, without one, every name defined here not starting
    with ``_``. A public name the module defines is documented on its page; one it imports
    (``__all__`` may re-export) is only linked, to be documented where it is defined. Listing
    the members explicitly keeps autodoc (and numpydoc's validation) off imported names.
    """
    module = importlib.import_module(name)
    defined = defined_names(module)
    public = getattr(module, "__all__", None)
    if public is None:
        return [n for n in defined if not n.startswith("_")], []
    return [n for n in defined if n in public], [n for n in public if n not in defined]


def module_page(name: str) -> str:
    """The reST of one module's page: its docstring and documented members."""
    documented, exported = module_members(name)
    lines = [_title(f"``{name}``"), f".. automodule:: {name}"]
    if documented:
        lines += [f"   :members: {', '.join(documented)}", "   :undoc-members:",
                  "   :show-inheritance:"]
    else:
        lines += ["   :no-members:"]
    if exported:
        module = importlib.import_module(name)
        links = []
        for n in exported:
            home = getattr(getattr(module, n, None), "__module__", None)
            links.append(f":obj:`{n} <{home}.{n}>`" if home else f"``{n}``")
        lines += ["", "Also exported here: " + ", ".join(links) + "."]
    return "\n".join(lines) + "\n"


def layer_page(package: str, modules: list[str]) -> str:
    """The reST of one layer's page: the package docstring and a table of its modules."""
    lines = [_title(LAYERS[package]), f".. automodule:: {package}\n   :no-members:\n",
             ".. toctree::\n   :hidden:\n"]
    lines += [f"   {name}" for name in modules]
    lines += ["", ".. list-table::", "   :header-rows: 1", "   :widths: 30 70", "",
              "   * - module", "     - summary"]
    for name in modules:
        summary = _summary(importlib.import_module(name)).replace("|", r"\|")
        lines += [f"   * - :doc:`{name.rsplit('.', 1)[1]} <{name}>`", f"     - {summary}"]
    return "\n".join(lines) + "\n"


def index_page() -> str:
    """The reST of ``api/index``: the layers and the curated names of ``import ntkdyn``."""
    import ntkdyn
    lines = [_title("API reference"),
             "The package has four layers; each imports only the layers to its right: "
             "``figures -> numerics -> theory -> base``.", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    lines += [f"   {package}" for package in LAYERS]
    lines += ["", _title("Top-level names", "-"),
              "``import ntkdyn`` is cheap; these names load from their modules on first use "
              "(``ntkdyn.MLP`` is ``ntkdyn.numerics.networks.MLP``).", "",
              ".. list-table::", "   :header-rows: 1", "   :widths: 30 70", "",
              "   * - name", "     - defined in"]
    for name, module in sorted(ntkdyn._API.items()):
        lines += [f"   * - ``ntkdyn.{name}``", f"     - :obj:`{module}.{name}`"]
    return "\n".join(lines) + "\n"


def generate(app) -> None:
    """``builder-inited`` handler: write every API page under ``<srcdir>/api``."""
    out = Path(app.srcdir) / "api"
    out.mkdir(exist_ok=True)
    pages = {"index.rst": index_page()}
    for package in LAYERS:
        modules = layer_modules(package)
        pages[f"{package}.rst"] = layer_page(package, modules)
        pages.update({f"{name}.rst": module_page(name) for name in modules})
    for stale in set(p.name for p in out.glob("*.rst")) - set(pages):
        (out / stale).unlink()  # a module that no longer exists
    for filename, text in pages.items():
        _write(out / filename, text)


def setup(app):
    """Register the page generator with Sphinx."""
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

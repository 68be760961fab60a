"""Every public callable of base, theory and numerics has a numpydoc docstring.

A public callable is a name in a module's ``__all__`` (or, for a module without one, a name not
starting with ``_`` defined in it), checked in the module that defines it, together with the
public methods its classes define. Each has a docstring; one that takes arguments has a
``Parameters`` section naming every one of them (a class documents its constructor's); one that
returns something has a ``Returns`` section (a generator: ``Yields``). The Sphinx build
(``docs/conf.py``) runs numpydoc's own validation of the same modules, reading ``PENDING`` from
this file.

``PENDING`` lists the modules whose docstrings are still to do (being rewritten elsewhere); they
are skipped here and in the Sphinx validation. Remove a module from it once it passes.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap

import pytest

PENDING = {
}

LAYERS = ("ntkdyn.base", "ntkdyn.theory", "ntkdyn.numerics")
_SECTION = re.compile(r"^(?P<name>[A-Z][A-Za-z ]+)\n-{3,}\s*$", re.MULTILINE)


def _modules() -> list[str]:
    names = []
    for layer in LAYERS:
        package = importlib.import_module(layer)
        names += [f"{layer}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
                  if not m.name.startswith("_")]
    return sorted(names)


MODULES = _modules()
CHECKED = [name for name in MODULES if name not in PENDING]


def sections(doc: str) -> dict[str, str]:
    """The numpydoc sections of a docstring: ``{title: body}`` (the summary is not one)."""
    doc = inspect.cleandoc(doc)
    found = list(_SECTION.finditer(doc))
    ends = [m.start() for m in found[1:]] + [len(doc)]
    return {m["name"].strip(): doc[m.end():end] for m, end in zip(found, ends)}


def documented_names(body: str) -> set[str]:
    """The names a Parameters section documents (``a, b : type`` documents ``a`` and ``b``)."""
    body = textwrap.dedent(body.strip("\n"))
    names = set()
    for line in body.splitlines():
        if line and not line[0].isspace():
            head = line.split(" : ")[0] if " : " in line else line.rstrip(":")
            names |= {part.strip().lstrip("*") for part in head.split(",")}
    return names


def _parameters(obj) -> list[str]:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin without a signature
        return []
    return [p.name for p in signature.parameters.values() if p.name not in ("self", "cls")]


def _own_nodes(function: ast.AST):
    """The nodes of a function's body, not descending into nested functions or classes."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def returns_kind(function) -> str | None:
    """``"Yields"`` for a generator, ``"Returns"`` when it returns a value, else ``None``."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source).body[0]
    nodes = list(_own_nodes(tree))
    if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in nodes):
        return "Yields"
    for node in nodes:
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return "Returns"
    return None


def problems(qualname: str, obj, is_class: bool = False) -> list[str]:
    """What the docstring of ``obj`` lacks (an empty list when it is complete)."""
    doc = obj.__doc__ if (is_class or not isinstance(obj, property)) else obj.fget.__doc__
    if is_class and doc == getattr(type(obj), "__doc__", None):
        doc = None
    if not doc or not doc.strip():
        return [f"{qualname}: no docstring"]
    if isinstance(obj, property):
        return []
    found = sections(doc)
    out = []
    params = _parameters(obj)
    if params:
        if "Parameters" not in found:
            out.append(f"{qualname}: no Parameters section (takes {', '.join(params)})")
        else:
            missing = [p for p in params if p not in documented_names(found["Parameters"])]
            if missing:
                out.append(f"{qualname}: Parameters does not document {', '.join(missing)}")
    if not is_class:
        kind = returns_kind(obj)
        if kind is not None and kind not in found:
            out.append(f"{qualname}: no {kind} section (it {kind.lower()[:-1]}s a value)")
    return out


def public_objects(module_name: str):
    """``(qualified name, object, is_class)`` for every public callable defined in the module,
    and every public method (or property) its public classes define."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if not callable(obj) or getattr(obj, "__module__", None) != module_name:
            continue  # data, a submodule, or a name checked in the module that defines it
        if inspect.isclass(obj):
            yield f"{module_name}.{name}", obj, True
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member) or isinstance(member, property):
                    yield f"{module_name}.{name}.{attr}", member, False
        elif inspect.isfunction(inspect.unwrap(obj)):  # a function, or one under lru_cache
            yield f"{module_name}.{name}", inspect.unwrap(obj), False


def test_pending_names_modules_of_the_checked_layers():
    prefixes = tuple(f"{layer}." for layer in LAYERS)
    assert all(name.startswith(prefixes) for name in PENDING), sorted(PENDING)


@pytest.mark.parametrize("module_name", CHECKED)
def test_public_callables_have_numpydoc_sections(module_name):
    found = [p for args in public_objects(module_name) for p in problems(*args)]
    assert not found, "\n".join(found)


def test_the_checker_finds_what_is_missing():
    def documented(x, y=1):
        """Add.

        Parameters
        ----------
        x, y : float
            The terms.

        Returns
        -------
        float
            Their sum.
        """
        return x + y

    def undocumented(x, *args):
        """Add.

        Parameters
        ----------
        x : float
        """
        return x

    def generator(n):
        """Count.

        Parameters
        ----------
        n : int
        """
        yield from range(n)

    def procedure():
        """Do nothing."""
        def inner():
            return 1
        return None

    assert problems("documented", documented) == []
    assert problems("undocumented", undocumented) == [
        "undocumented: Parameters does not document args",
        "undocumented: no Returns section (it returns a value)"]
    assert problems("generator", generator) == ["generator: no Yields section (it yields a value)"]
    assert problems("procedure", procedure) == []
    assert problems("nothing", lambda: None) == ["nothing: no docstring"]

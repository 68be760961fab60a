"""Sphinx configuration of the ntkdyn documentation.

Build (as ``.ci/run`` does, warnings are errors)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API pages (``docs/api/``) and the experiment pages (``docs/experiments/``) are generated at
build time by the extensions in ``docs/_ext/`` (from the package's modules and from the experiment
registry with ``docs/report/NAME.json``); they are not committed. ``docs/_ext/formula_blocks.py``
shows the docstrings' plain-text formula blocks verbatim. numpydoc validates the docstrings of
base, theory and numerics, except the modules listed in ``PENDING`` of
``tests/test_docstrings.py``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import ntkdyn  # noqa: E402  (installed with `pip install -e .`)

project = "ntkdyn"
author = "the ntkdyn authors"
copyright = "the ntkdyn authors"
release = ntkdyn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "formula_blocks",
    "api_pages",
    "experiment_pages",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# docs/report/ holds the committed results (figures and JSON read by the experiment pages); its
# Markdown report is not a page of this site.
exclude_patterns = ["_build", "report"]
html_theme = "alabaster"
# literal blocks hold plain-text formulas (docs/_ext/formula_blocks.py), not Python
highlight_language = "none"
html_title = f"ntkdyn {release}"
html_static_path: list[str] = []
html_theme_options = {"page_width": "1160px", "sidebar_width": "230px"}

autodoc_default_options: dict = {}
autodoc_member_order = "bysource"
# a method without a docstring shows none (not, say, concurrent.futures.Executor.submit's)
autodoc_inherit_docstrings = False
autodoc_typehints = "none"  # the numpydoc sections state types and shapes

myst_heading_anchors = 3

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False
numpydoc_xref_param_type = False


def _pending_modules() -> set[str]:
    """``PENDING`` of ``tests/test_docstrings.py``: the modules whose docstrings are still to do
    (one list for the test and for numpydoc's validation here)."""
    tree = ast.parse((ROOT / "tests" / "test_docstrings.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "PENDING"):
            return set(ast.literal_eval(node.value))
    raise RuntimeError("tests/test_docstrings.py defines no PENDING set")


# numpydoc validation (a failed check is a warning, so an error under `sphinx -W`): every
# documented object of base, theory and numerics has a docstring with a summary, documents every
# parameter it takes (and none it does not) and a Returns (or Yields) section when it returns
# something. The figures layer and the modules still PENDING are not validated.
numpydoc_validation_checks = {"GL08", "SS01", "PR01", "PR02", "RT01", "YD01"}
numpydoc_validation_exclude = {
    r"^ntkdyn\.figures(\.|$)",
    r"^ntkdyn$",
    *(r"^" + name.replace(".", r"\.") + r"(\.|$)" for name in sorted(_pending_modules())),
}

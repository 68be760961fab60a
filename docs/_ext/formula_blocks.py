"""Sphinx extension: an indented block after a line ending in ``:`` is a formula, shown verbatim.

The docstrings of ntkdyn state their equations in plain text, as an indented block after a
sentence ending in a colon::

    so the residual decays as

        r_t = U diag(exp(-lambda t / n)) U^T r_0,   |r_t| <= |r_0|.

reStructuredText reads such a block as a quotation, where the formula's characters are markup
(``|x|`` a substitution, ``*`` emphasis, a deeper-indented continuation line an error) and its
alignment is lost. Before numpydoc and autodoc parse a docstring, this extension ends such a
sentence with ``::`` instead, which makes the block a literal block: the formula is shown as
written, in a fixed-width font. A sentence that already ends in ``::``, a directive or a field
(a line starting with ``..`` or ``:``) is left alone. The experiment pages apply the same
rule to the experiment modules' docstrings (:func:`literal_formulas`).
"""
from __future__ import annotations


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def literal_formulas(lines: list[str]) -> list[str]:
    """``lines`` with every colon that introduces an indented block turned into ``::``.

    A line qualifies when it is text ending in a single ``:``, the next line is blank and the
    next non-blank line is indented deeper than the line itself. Lines inside a literal block
    (already introduced by ``::``) are never changed.
    """
    out = list(lines)
    literal = None  # indentation of the line that opened the current literal block
    for i, line in enumerate(lines):
        text = line.rstrip()
        if not text:
            continue
        if literal is not None:
            if _indent(line) > literal:
                continue
            literal = None
        stripped = text.lstrip()
        if text.endswith("::"):
            literal = _indent(line)
            continue
        if (not text.endswith(":") or stripped.startswith((":", ".."))
                or i + 1 >= len(lines) or lines[i + 1].strip()):
            continue
        following = next((other for other in lines[i + 2:] if other.strip()), None)
        if following is not None and _indent(following) > _indent(line):
            out[i] = text + ":"
            literal = _indent(line)
    return out


def process_docstring(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring`` handler, run before numpydoc's (priority 400)."""
    lines[:] = literal_formulas(lines)


def setup(app):
    """Register the docstring handler with Sphinx."""
    app.connect("autodoc-process-docstring", process_docstring, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

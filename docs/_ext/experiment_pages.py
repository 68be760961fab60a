"""Sphinx extension: one page per registered experiment (``docs/experiments/``), at build time.

Each page is made from the experiment registry (:mod:`ntkdyn.figures.registry`) and from the
committed result of its quick configuration (``docs/report/NAME.png`` and ``NAME.json``, written
by ``ntkdyn all --out docs/report``): what the experiment tests (its description and its module's
docstring), its figure, its agreement table (every declared number with its kind, value, target
and verdict), its negative controls, its regimes and its three configurations. An experiment
without a committed result gets its page all the same, saying so. The generated files are
ignored by git (``docs/experiments/.gitignore``).
"""
from __future__ import annotations

import importlib
import inspect
import json
import math
from pathlib import Path

from formula_blocks import literal_formulas

_SPECIAL = str.maketrans({c: "\\" + c for c in "\\*`|_<>[]"})


def escape(text) -> str:
    """``text`` as plain reST text: markup characters escaped, newlines as spaces."""
    return " ".join(str(text).split()).translate(_SPECIAL)


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _literal(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return f"``{text}``" if text else ""


def format_value(value) -> str:
    """A number as the table shows it (4 significant digits; ``NaN`` and ``missing`` spelled)."""
    if value is None:
        return "missing"
    value = float(value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def format_target(bounds, target_type) -> str:
    """``[low, high]`` of the JSON record as text (``<= high``, ``>= low``, ``true``)."""
    if target_type == "is_true":
        return "true"
    low, high = (bounds or [None, None])
    if low is None and high is None:
        return "any"
    if low is None:
        return f"<= {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"[{low:g}, {high:g}]"


def _table(header: list[str], rows: list[list[str]], widths: list[int]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1",
             f"   :widths: {' '.join(str(w) for w in widths)}", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return lines + [""]


def agreement_rows(record: dict) -> list[list[str]]:
    """One row per declared number of a JSON record: name, kind, value, target, verdict, what."""
    rows = []
    for key, kind in record.get("kinds", {}).items():
        holds = record.get("holds", {}).get(key)
        rows.append([f"``{key}``", kind, format_value(record.get("agreement", {}).get(key)),
                     escape(format_target(record.get("targets", {}).get(key),
                                          record.get("target_types", {}).get(key))),
                     "holds" if holds else "**fails**",
                     escape(record.get("descriptions", {}).get(key, ""))])
    return rows


def experiment_page(experiment, module, record: dict | None, has_figure: bool) -> str:
    """The reST of one experiment's page."""
    name = experiment.name
    lines = [f".. _experiment-{name}:", "", _title(name), escape(experiment.description), "",
             f"Module ``{module.__name__}``; run it with ``ntkdyn run {name}`` (quick) or "
             f"``ntkdyn run {name} --paper``.", "", _title("What it tests", "-")]
    lines += literal_formulas(inspect.cleandoc(module.__doc__ or "").splitlines()) + [""]
    lines += [_title("Figure", "-")]
    if has_figure:
        lines += [f".. image:: ../report/{name}.png", f"   :alt: {escape(experiment.description)}",
                  "   :width: 100%", ""]
    else:
        lines += ["No figure is committed in ``docs/report/`` for this experiment.", ""]
    lines += [_title("Agreement table", "-")]
    if record is None:
        lines += [f"No result is committed: ``ntkdyn run {name} --out docs/report`` writes one.",
                  ""]
    else:
        verdict = "every check holds" if record.get("ok") else "**some checks fail**"
        lines += [f"The ``{record.get('config_name', '?')}`` configuration, recorded in "
                  f"``docs/report/{name}.json`` (ntkdyn {record.get('version', '?')}, "
                  f"executor ``{record.get('executor', '?')}``): {verdict}.", ""]
        lines += _table(["number", "kind", "value", "target", "verdict", "what it measures"],
                        agreement_rows(record), [22, 10, 10, 12, 8, 38])
        controls = record.get("controls", {})
        if controls:
            lines += [_title("Negative controls", "-"),
                      "Plausible wrong theories put through the same measurement; each must fail "
                      "at least one agreement target.", ""]
            rows = [[f"``{c}``", escape(v.get("description", "")),
                     ", ".join(f"``{k}``" for k in v.get("fails", [])) or "**none**"]
                    for c, v in controls.items()]
            lines += _table(["control", "wrong theory", "agreement targets it fails"], rows,
                            [20, 45, 35])
        regimes = record.get("regimes", {})
        if regimes:
            lines += [_title("Regimes", "-"), "Where the theory is expected not to hold:", ""]
            lines += [f"- ``{k}``: {escape(v)}" for k, v in regimes.items()] + [""]
    lines += [_title("Configurations", "-"),
              "``smoke`` runs in the test suite, ``quick`` in ``ntkdyn all``, ``paper`` with "
              "``--paper``; any key can be changed with ``--set KEY=VALUE``.", ""]
    configs = {c: experiment.config(c) for c in ("smoke", "quick", "paper")}
    rows = [[f"``{key}``", *(_literal(configs[c][key]) for c in configs)]
            for key in configs["quick"]]
    lines += _table(["key", "smoke", "quick", "paper"], rows, [25, 25, 25, 25])
    return "\n".join(lines) + "\n"


def index_page(entries: list[tuple]) -> str:
    """The reST of ``experiments/index``: every experiment with its headline counts."""
    lines = [_title("Experiments"),
             "Each experiment puts a theory beside a simulation and holds every number it reports "
             "to a declared target, with negative controls its agreement targets must reject "
             "(:doc:`../conventions`). The counts are those of the committed quick results in "
             "``docs/report/``.", "", ".. toctree::", "   :hidden:", ""]
    lines += [f"   {experiment.name}" for experiment, _ in entries] + [""]
    rows = []
    for experiment, record in entries:
        if record is None:
            agreements = controls = "no result"
        else:
            keys = [k for k, kind in record["kinds"].items() if kind == "agreement"]
            held = sum(bool(record["holds"].get(k)) for k in keys)
            agreements = f"{held} / {len(keys)}" if keys else "observations only"
            rejected = sum(bool(v.get("fails")) for v in record.get("controls", {}).values())
            controls = f"{rejected} / {len(record.get('controls', {}))}"
        rows.append([f":doc:`{experiment.name}`", escape(experiment.description), agreements,
                     controls])
    lines += _table(["experiment", "what it shows", "agreements held", "controls rejected"],
                    rows, [22, 54, 12, 12])
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(app) -> None:
    """``builder-inited`` handler: write every experiment page under ``<srcdir>/experiments``."""
    from ntkdyn.figures.registry import EXPERIMENT_MODULES
    src = Path(app.srcdir)
    report, out = src / "report", src / "experiments"
    out.mkdir(exist_ok=True)
    entries, pages = [], {}
    for path in EXPERIMENT_MODULES:
        module = importlib.import_module(path)
        experiment = module.EXPERIMENT
        record_path = report / f"{experiment.name}.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else None
        has_figure = (report / f"{experiment.name}.png").exists()
        pages[f"{experiment.name}.rst"] = experiment_page(experiment, module, record, has_figure)
        entries.append((experiment, record))
    pages["index.rst"] = index_page(entries)
    for stale in set(p.name for p in out.glob("*.rst")) - set(pages):
        (out / stale).unlink()  # an experiment no longer registered
    for filename, text in pages.items():
        _write(out / filename, text)


def setup(app):
    """Register the page generator with Sphinx."""
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

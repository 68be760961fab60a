"""The report: one self-contained HTML page (and a Markdown twin) of every experiment's figure,
configuration and numbers, each with its kind and beside the target it is held to.

The headline counts by kind: agreements held (theory against simulation), controls rejected
(wrong theories that the agreement targets catch), identities and observations held. Every
section lists its controls and the regimes where its theory is expected to fail.

``build_report(out)`` reads the ``NAME.json`` + ``NAME.png`` pairs that
:func:`ntkdyn.figures.runner.run_experiment` wrote into ``out``, runs the quick configuration of
every registered experiment that has none there, and writes ``out/report.html`` (images embedded as
``data:`` URIs, inline CSS, no scripts, no external resources) and ``out/report.md`` (linking the
PNGs by relative path), and ``out/report.csv``, the agreement tables of every experiment as CSV
(:func:`numbers_csv`, one row per number). A malformed result stops it with a ``ValueError``
naming the file, before anything is run or written.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .experiment import KINDS
from .registry import experiments
from .storage import write_text

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-family: ui-monospace, monospace; }
code, td.mono { font-family: ui-monospace, monospace; }
.holds { color: #176317; font-weight: 600; }
.fails { color: #b01515; font-weight: 600; }
.notrun { color: #777; font-style: italic; }
img { display: block; max-width: 100%; height: auto; border: 1px solid #eee; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
.meta { color: #555; font-size: 0.9em; }
.headline { font-size: 1.1em; font-weight: 600; }
p code { overflow-wrap: anywhere; }
.wide { overflow-x: auto; max-width: 100%; -webkit-overflow-scrolling: touch; }
td.text { min-width: 14em; }
@media (max-width: 600px) {
  body { margin: 0.8em auto; padding: 0 0.5em; }
  h1 { font-size: 1.5em; }
  h2 { font-size: 1.25em; }
  th, td { padding: 0.2em 0.4em; }
}
"""


@dataclass
class Entry:
    """One experiment in the report: its record (``None`` when not run) and figure."""
    name: str
    description: str
    record: dict | None
    png: Path | None

    def rows(self) -> list[tuple[str, float, str, str, bool]]:
        """``(name, value, kind, target text, holds)`` per declared number."""
        r = self.record
        return [(key, value, r["kinds"][key],
                 target_text(r["targets"][key], r.get("target_types", {}).get(key, "interval")),
                 bool(r["holds"].get(key, False)))
                for key, value in r["agreement"].items()]

    def tally(self) -> dict[str, tuple[int, int]]:
        """``{kind: (held, declared)}`` and ``"controls": (rejected, declared)``."""
        out = {kind: [0, 0] for kind in KINDS}
        for _, _, kind, _, ok in self.rows():
            out[kind][0] += ok
            out[kind][1] += 1
        controls = self.record.get("controls", {})
        out["controls"] = [sum(bool(c["fails"]) for c in controls.values()), len(controls)]
        return {k: tuple(v) for k, v in out.items()}

    @property
    def ok(self) -> bool:
        return bool(self.record.get("ok")) and not self.record.get("failures")


def target_text(bounds, target_type: str = "interval") -> str:
    if target_type == "is_true":
        return "true"
    low, high = bounds
    if low is None:
        return f"<= {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"[{low:g}, {high:g}]"


def format_number(value: float) -> str:
    return f"{value:.6g}"


def format_value(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_record(json_path: Path) -> dict:
    """The record in ``json_path``, checked; ``ValueError`` naming the file when malformed."""
    def bad(reason):
        return ValueError(f"malformed result file {json_path}: {reason}")

    try:
        record = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad(f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise bad("expected a JSON object")
    required = ("experiment", "config", "agreement", "kinds", "targets", "holds", "controls")
    missing = [k for k in required if k not in record]
    if missing:
        raise bad(f"missing keys {missing}")
    stem = record.get("stem", record["experiment"])  # NAME, or NAME-TAG for a changed config
    if stem != json_path.stem or not (isinstance(record["experiment"], str) and (
            stem == record["experiment"] or stem.startswith(record["experiment"] + "-"))):
        raise bad(f"records experiment {record['experiment']!r}, expected {json_path.stem!r}")
    for key in ("config", "agreement", "kinds", "targets", "holds", "controls"):
        if not isinstance(record[key], dict):
            raise bad(f"{key!r} must be an object")
    for key, value in record["agreement"].items():
        if not _is_number(value):
            raise bad(f"agreement {key!r} is {value!r}, not a finite number")
        if record["kinds"].get(key) not in KINDS:
            raise bad(f"number {key!r} has kind {record['kinds'].get(key)!r}, not one of {KINDS}")
        if key not in record["targets"]:
            raise bad(f"number {key!r} has no target")
    for key, target in record["targets"].items():
        if not (isinstance(target, list) and len(target) == 2
                and all(t is None or _is_number(t) for t in target)
                and any(t is not None for t in target)
                and (None in target or target[0] <= target[1])):
            raise bad(f"target {key!r} is {target!r}, not [low, high] (null for an open side)")
    return record


def check_png(png_path: Path) -> None:
    if not png_path.is_file():
        raise ValueError(f"result {png_path.with_suffix('.json')} has no figure {png_path} "
                         "(the report embeds the PNG: run with a --format that includes png)")
    with open(png_path, "rb") as fh:
        if fh.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise ValueError(f"malformed result file {png_path}: not a PNG image")


def collect(out: Path, run_missing: bool, overrides_for: dict | None, quiet: bool,
            scheduler: str | None = "serial") -> list[Entry]:
    """Every registered experiment (running missing ones when asked), then any other
    ``NAME.json`` + ``NAME.png`` pair in ``out`` (an experiment no longer registered). The
    outputs of a changed configuration (``NAME-TAG.json``, :func:`ntkdyn.figures.runner.
    output_stem`) are not part of the report."""
    from .runner import run_experiment

    registry = experiments()
    overrides_for = dict(overrides_for or {})
    unknown = sorted(set(overrides_for) - set(registry))
    if unknown:
        raise ValueError(f"overrides_for names unknown experiments {unknown}; "
                         f"expected some of {sorted(registry)}")
    found = {}
    for json_path in sorted(out.glob("*.json")):
        name = json_path.stem
        if name in registry or json_path.with_suffix(".png").is_file():
            record = read_record(json_path)
            if record["experiment"] != name:  # NAME-TAG: a changed configuration's outputs
                continue
            found[name] = record
            check_png(json_path.with_suffix(".png"))
    if run_missing:
        for name in registry:
            if name not in found:
                found[name] = run_experiment(name, out=out, overrides=overrides_for.get(name),
                                             scheduler=scheduler,
                                             verbose=not quiet)
    entries = [Entry(name, experiment.description, found.get(name),
                     out / f"{name}.png" if name in found else None)
               for name, experiment in registry.items()]
    entries += [Entry(name, "(not a registered experiment)", record, out / f"{name}.png")
                for name, record in found.items() if name not in registry]
    return entries


def _status(entry: Entry) -> str:
    if entry.record is None:
        return "not run"
    failures = entry.record.get("failures", [])
    if entry.ok:
        return "all hold"
    return f"{len(failures)} check{'s' if len(failures) != 1 else ''} fail"


def _count(pair) -> str:
    return "{} / {}".format(*pair) if pair[1] else "–"


def headline(entries: list[Entry]) -> str:
    """``agreements held N/M, controls rejected K/K, identities held I/J, observations held O/P``.
    """
    total = {k: [0, 0] for k in (*KINDS, "controls")}
    for entry in entries:
        if entry.record is not None:
            for k, (a, b) in entry.tally().items():
                total[k][0] += a
                total[k][1] += b
    return (f"agreements held {total['agreement'][0]}/{total['agreement'][1]}, "
            f"controls rejected {total['controls'][0]}/{total['controls'][1]}, "
            f"identities held {total['identity'][0]}/{total['identity'][1]}, "
            f"observations held {total['observation'][0]}/{total['observation'][1]}")


SUMMARY_COLUMNS = ("experiment", "agreements held", "controls rejected", "identities",
                   "observations", "status")


def _summary_cells(entry: Entry) -> list[str]:
    if entry.record is None:
        return ["–", "–", "–", "–", _status(entry)]
    t = entry.tally()
    return [_count(t["agreement"]), _count(t["controls"]), _count(t["identity"]),
            _count(t["observation"]), _status(entry)]


def _meta(record: dict) -> str:
    parts = [record.get("config_name") or ("paper" if record.get("paper") else "quick")]
    if "seconds" in record:
        parts.append(f"{record['seconds']:g} s{', cached' if record.get('cached') else ''}")
    if "executor" in record:
        parts.append(f"executor {record['executor']}")
    if "version" in record:
        parts.append(f"ntkdyn {record['version']}")
    return " · ".join(str(p) for p in parts)


def render_html(entries: list[Entry], out: Path) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>ntkdyn report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>ntkdyn report</h1>",
             f'<p class="headline">{e(headline(entries))}</p>',
             f'<p class="meta">Results from <code>{e(str(out))}</code>. Every number has a kind: '
             "<em>agreement</em> (theory against simulation, the theory computed without the "
             "simulation's outcome), <em>identity</em> (holds by construction) or "
             "<em>observation</em> (simulation against a qualitative claim), and a target. A "
             "<em>control</em> is a plausible wrong theory put through the same measurement; "
             "it is rejected when it misses at least one agreement target.</p>",
             "<h2>Summary</h2>", '<div class="wide"><table><tr>'
             + "".join(f"<th>{c}</th>" for c in SUMMARY_COLUMNS) + "</tr>"]
    for entry in entries:
        cells = _summary_cells(entry)
        status = cells[-1]
        cls = "notrun" if entry.record is None else ("holds" if entry.ok else "fails")
        parts.append(f'<tr><td><a href="#{e(entry.name)}">{e(entry.name)}</a></td>'
                     + "".join(f'<td class="num">{e(c)}</td>' for c in cells[:-1])
                     + f'<td class="{cls}">{e(status)}</td></tr>')
    parts.append("</table></div>")
    for entry in entries:
        parts += [f'<section id="{e(entry.name)}"><h2>{e(entry.name)}</h2>',
                  f"<p>{e(entry.description)}</p>"]
        if entry.record is None:
            parts.append(f'<p class="notrun">not run: <code>ntkdyn run {e(entry.name)} '
                         f"--out {e(str(out))}</code></p></section>")
            continue
        data = base64.b64encode(entry.png.read_bytes()).decode("ascii")
        parts += [f'<p class="meta">{e(_meta(entry.record))}</p>',
                  f'<img src="data:image/png;base64,{data}" alt="{e(entry.name)} figure">',
                  "<h3>Numbers</h3>", '<div class="wide"><table><tr><th>number</th><th>kind</th>'
                  "<th>value</th><th>target</th><th></th></tr>"]
        for key, value, kind, target, ok in entry.rows():
            verdict = ("holds", "holds") if ok else ("fails", "FAILS")
            parts.append(f'<tr><td class="mono">{e(key)}</td><td>{e(kind)}</td>'
                         f'<td class="num">{format_number(value)}</td>'
                         f'<td class="num">{e(target)}</td>'
                         f'<td class="{verdict[0]}">{verdict[1]}</td></tr>')
        parts.append("</table></div>")
        parts += _html_controls(entry, e)
        parts += ["<h3>Configuration</h3>", '<div class="wide"><table>'
                  "<tr><th>key</th><th>value</th></tr>"]
        for key, value in entry.record["config"].items():
            parts.append(f'<tr><td class="mono">{e(key)}</td>'
                         f'<td class="mono">{e(format_value(value))}</td></tr>')
        parts.append("</table></div></section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_controls(entry: Entry, e) -> list[str]:
    parts = []
    controls = entry.record.get("controls", {})
    if controls:
        parts += ["<h3>Controls</h3>", '<div class="wide"><table><tr><th>control</th>'
                  "<th>wrong theory</th><th>rejected by</th></tr>"]
        for name, control in controls.items():
            fails = ", ".join(control["fails"]) or "NOT REJECTED"
            cls = "holds" if control["fails"] else "fails"
            parts.append(f'<tr><td class="mono">{e(name)}</td><td class="text">'
                         f'{e(control["description"])}</td><td class="{cls}">{e(fails)}</td></tr>')
        parts.append("</table></div>")
    regimes = entry.record.get("regimes", {})
    if regimes:
        parts.append("<h3>Regimes</h3><ul>")
        parts += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in regimes.items()]
        parts.append("</ul>")
    failures = entry.record.get("failures", [])
    if failures:
        parts.append('<h3>Failed checks</h3><ul class="fails">')
        parts += [f"<li>{e(f)}</li>" for f in failures]
        parts.append("</ul>")
    return parts


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_markdown(entries: list[Entry], out: Path) -> str:
    lines = ["# ntkdyn report", "", f"**{headline(entries)}**", "",
             f"Results from `{out}`. Every number has a kind (agreement: theory against "
             "simulation; identity: holds by construction; observation: simulation against a "
             "qualitative claim) and a target. A control is a plausible wrong theory put through "
             "the same measurement; it is rejected when it misses at least one agreement target.",
             "", "## Summary", "", "| " + " | ".join(SUMMARY_COLUMNS) + " |",
             "|---|---:|---:|---:|---:|---|"]
    for entry in entries:
        cells = _summary_cells(entry)
        lines.append(f"| [{entry.name}](#{entry.name}) | " + " | ".join(cells) + " |")
    for entry in entries:
        lines += ["", f"## {entry.name}", "", entry.description, ""]
        if entry.record is None:
            lines.append(f"*not run*: `ntkdyn run {entry.name} --out {out}`")
            continue
        lines += [_meta(entry.record), "", f"![{entry.name} figure]({entry.png.name})", "",
                  "### Numbers", "", "| number | kind | value | target | |",
                  "|---|---|---:|---:|---|"]
        for key, value, kind, target, ok in entry.rows():
            verdict = "holds" if ok else "**FAILS**"
            lines.append(f"| `{key}` | {kind} | {format_number(value)} | {_md_cell(target)} | "
                         f"{verdict} |")
        controls = entry.record.get("controls", {})
        if controls:
            lines += ["", "### Controls", "", "| control | wrong theory | rejected by |",
                      "|---|---|---|"]
            for name, control in controls.items():
                fails = ", ".join(f"`{f}`" for f in control["fails"]) or "**NOT REJECTED**"
                lines.append(f"| `{name}` | {_md_cell(control['description'])} | {fails} |")
        regimes = entry.record.get("regimes", {})
        if regimes:
            lines += ["", "### Regimes", ""] + [f"- **{k}**: {v}" for k, v in regimes.items()]
        failures = entry.record.get("failures", [])
        if failures:
            lines += ["", "### Failed checks", ""] + [f"- {f}" for f in failures]
        lines += ["", "### Configuration", "", "| key | value |", "|---|---|"]
        for key, value in entry.record["config"].items():
            lines.append(f"| `{key}` | `{_md_cell(format_value(value))}` |")
    return "\n".join(lines) + "\n"


def build_report(out="out", quiet: bool = False, run_missing: bool = True,
                 overrides_for: dict | None = None,
                 scheduler: str | None = "serial") -> list[Path]:
    """Write ``out/report.html`` and ``out/report.md``; return their paths.

    ``run_missing``: run the quick configuration of each registered experiment without a
    result in ``out`` (otherwise it is listed as not run); ``overrides_for``:
    ``{experiment name: configuration overrides}`` for those runs.
    """
    out = Path(out)
    if not out.is_dir():
        if not run_missing:
            raise ValueError(f"results folder {out} does not exist")
        out.mkdir(parents=True)
    entries = collect(out, run_missing, overrides_for, quiet, scheduler)
    html_text = render_html(entries, out)
    markdown_text = render_markdown(entries, out)
    csv_text = numbers_csv([e.record for e in entries if e.record is not None])
    paths = [out / "report.html", out / "report.md", out / "report.csv"]
    write_text(paths[0], html_text)
    write_text(paths[1], markdown_text)
    write_text(paths[2], csv_text)
    return paths


# ------------------------------------------------------------------------------ CSV export
#: The columns of the agreement tables as CSV (:func:`numbers_csv`): one row per number.
CSV_COLUMNS = ("experiment", "stem", "config_name", "number", "kind", "value", "target",
               "target_type", "low", "high", "holds", "description")


def numbers_rows(record: dict) -> list[dict]:
    """The agreement table of one record: a dict per declared number, keyed by
    :data:`CSV_COLUMNS` (``low``/``high`` ``None`` for an open side)."""
    rows = []
    types = record.get("target_types", {})
    for key, value in record["agreement"].items():
        bounds = record["targets"].get(key, [None, None])
        target_type = types.get(key, "interval")
        rows.append({
            "experiment": record["experiment"], "stem": record.get("stem", record["experiment"]),
            "config_name": record.get("config_name", ""), "number": key,
            "kind": record["kinds"].get(key, ""), "value": value,
            "target": target_text(bounds, target_type), "target_type": target_type,
            "low": bounds[0], "high": bounds[1], "holds": bool(record["holds"].get(key, False)),
            "description": record.get("descriptions", {}).get(key, "")})
    return rows


def numbers_csv(records) -> str:
    """The agreement tables of ``records`` as CSV text (a header of :data:`CSV_COLUMNS`, then
    one row per number; values at full precision, an open side empty, ``holds`` ``true`` or
    ``false``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        for row in numbers_rows(record):
            writer.writerow(["" if row[c] is None else
                             ("true" if row[c] else "false") if isinstance(row[c], bool) else
                             repr(float(row[c])) if c in ("value", "low", "high") else row[c]
                             for c in CSV_COLUMNS])
    return buffer.getvalue()

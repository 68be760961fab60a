"""The report: one self-contained HTML page (and a Markdown twin) of every experiment's figure,
configuration and agreement numbers, each beside the target interval it is held to.

``build_report(out)`` reads the ``NAME.json`` + ``NAME.png`` pairs that
:func:`ntkdyn.figures.runner.run_experiment` wrote into ``out``, runs the quick configuration of
every registered experiment that has none there, and writes ``out/report.html`` (images embedded as
``data:`` URIs, inline CSS, no scripts, no external resources) and ``out/report.md`` (linking the
PNGs by relative path). A malformed result stops it with a ``ValueError`` naming the file, before
anything is run or written.
"""
from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .registry import experiments
from .runner import holds
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
img { max-width: 100%; height: auto; border: 1px solid #eee; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
.meta { color: #555; font-size: 0.9em; }
"""


@dataclass
class Entry:
    """One experiment in the report: its record (``None`` when not run) and figure."""
    name: str
    description: str
    record: dict | None
    png: Path | None

    def rows(self) -> list[tuple[str, float, list | None, bool | None]]:
        """``(agreement name, value, [low, high] or None, holds or None)`` per number."""
        out = []
        for key, value in self.record["agreement"].items():
            target = self.record["targets"].get(key)
            out.append((key, value, target, None if target is None else holds(value, target)))
        return out

    def tally(self) -> tuple[int, int]:
        """(targets held, targets checked)."""
        checked = [ok for _, _, target, ok in self.rows() if target is not None]
        return sum(checked), len(checked)


def format_number(value: float) -> str:
    return f"{value:.6g}"


def format_target(target) -> str:
    return f"[{target[0]:g}, {target[1]:g}]"


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
    missing = [k for k in ("experiment", "config", "agreement", "targets") if k not in record]
    if missing:
        raise bad(f"missing keys {missing}")
    if record["experiment"] != json_path.stem:
        raise bad(f"records experiment {record['experiment']!r}, expected {json_path.stem!r}")
    for key in ("config", "agreement", "targets"):
        if not isinstance(record[key], dict):
            raise bad(f"{key!r} must be an object")
    for key, value in record["agreement"].items():
        if not _is_number(value):
            raise bad(f"agreement {key!r} is {value!r}, not a finite number")
    for key, target in record["targets"].items():
        if not (isinstance(target, list) and len(target) == 2
                and all(_is_number(t) for t in target) and target[0] <= target[1]):
            raise bad(f"target {key!r} is {target!r}, not an interval [low, high]")
    return record


def check_png(png_path: Path) -> None:
    if not png_path.is_file():
        raise ValueError(f"result {png_path.with_suffix('.json')} has no figure {png_path}")
    with open(png_path, "rb") as fh:
        if fh.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise ValueError(f"malformed result file {png_path}: not a PNG image")


def collect(out: Path, run_missing: bool, overrides_for: dict | None, quiet: bool) -> list[Entry]:
    """Every registered experiment (running missing ones when asked), then any other
    ``NAME.json`` + ``NAME.png`` pair in ``out`` (an experiment no longer registered)."""
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
            found[name] = read_record(json_path)
            check_png(json_path.with_suffix(".png"))
    if run_missing:
        for name in registry:
            if name not in found:
                found[name] = run_experiment(name, out=out, overrides=overrides_for.get(name),
                                             verbose=not quiet)
    entries = [Entry(name, module.DESCRIPTION, found.get(name),
                     out / f"{name}.png" if name in found else None)
               for name, module in registry.items()]
    entries += [Entry(name, "(not a registered experiment)", record, out / f"{name}.png")
                for name, record in found.items() if name not in registry]
    return entries


def _status(entry: Entry) -> str:
    if entry.record is None:
        return "not run"
    held, total = entry.tally()
    failed = total - held
    return "all hold" if not failed else f"{failed} fail{'s' if failed == 1 else ''}"


def _meta(record: dict) -> str:
    parts = ["paper" if record.get("paper") else "quick"]
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
             f'<p class="meta">Results from <code>{e(str(out))}</code>. Each agreement number '
             "is held to a target interval; it holds when it lies inside.</p>",
             "<h2>Summary</h2>",
             "<table><tr><th>experiment</th><th>targets held</th><th>status</th></tr>"]
    for entry in entries:
        held = "&ndash;" if entry.record is None else "{} / {}".format(*entry.tally())
        status = _status(entry)
        cls = "notrun" if entry.record is None else ("holds" if status == "all hold" else "fails")
        parts.append(f'<tr><td><a href="#{e(entry.name)}">{e(entry.name)}</a></td>'
                     f'<td class="num">{held}</td><td class="{cls}">{e(status)}</td></tr>')
    parts.append("</table>")
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
                  "<h3>Agreement</h3>",
                  "<table><tr><th>number</th><th>value</th><th>target</th><th></th></tr>"]
        for key, value, target, ok in entry.rows():
            verdict = ("", "no target") if target is None else (
                ("holds", "holds") if ok else ("fails", "FAILS"))
            parts.append(f'<tr><td class="mono">{e(key)}</td>'
                         f'<td class="num">{format_number(value)}</td>'
                         f'<td class="num">{"" if target is None else format_target(target)}'
                         f'</td><td class="{verdict[0]}">{verdict[1]}</td></tr>')
        parts += ["</table>", "<h3>Configuration</h3>",
                  "<table><tr><th>key</th><th>value</th></tr>"]
        for key, value in entry.record["config"].items():
            parts.append(f'<tr><td class="mono">{e(key)}</td>'
                         f'<td class="mono">{e(format_value(value))}</td></tr>')
        parts.append("</table></section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_markdown(entries: list[Entry], out: Path) -> str:
    lines = ["# ntkdyn report", "",
             f"Results from `{out}`. Each agreement number is held to a target interval; "
             "it holds when it lies inside.", "", "## Summary", "",
             "| experiment | targets held | status |", "|---|---:|---|"]
    for entry in entries:
        held = "–" if entry.record is None else "{} / {}".format(*entry.tally())
        lines.append(f"| [{entry.name}](#{entry.name}) | {held} | {_status(entry)} |")
    for entry in entries:
        lines += ["", f"## {entry.name}", "", entry.description, ""]
        if entry.record is None:
            lines.append(f"*not run*: `ntkdyn run {entry.name} --out {out}`")
            continue
        lines += [_meta(entry.record), "", f"![{entry.name} figure]({entry.png.name})", "",
                  "### Agreement", "", "| number | value | target | |", "|---|---:|---:|---|"]
        for key, value, target, ok in entry.rows():
            verdict = "no target" if target is None else ("holds" if ok else "**FAILS**")
            shown = "" if target is None else format_target(target)
            lines.append(f"| `{key}` | {format_number(value)} | {shown} | {verdict} |")
        lines += ["", "### Configuration", "", "| key | value |", "|---|---|"]
        for key, value in entry.record["config"].items():
            lines.append(f"| `{key}` | `{_md_cell(format_value(value))}` |")
    return "\n".join(lines) + "\n"


def build_report(out="out", quiet: bool = False, run_missing: bool = True,
                 overrides_for: dict | None = None) -> list[Path]:
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
    entries = collect(out, run_missing, overrides_for, quiet)
    html_text = render_html(entries, out)
    markdown_text = render_markdown(entries, out)
    paths = [out / "report.html", out / "report.md"]
    write_text(paths[0], html_text)
    write_text(paths[1], markdown_text)
    return paths

"""The report: self-contained HTML (checked by a parser and by headless Chromium) and its
Markdown twin, with every agreement number beside its target; malformed results refused."""
import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ntkdyn.figures import cli, registry
from ntkdyn.figures.report import build_report
from ntkdyn.figures.runner import run_experiment

TINY = {"log2_widths": [6, 7, 8, 9, 10, 11], "seeds": 2, "n": 16, "d": 8}  # the smoke config
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    run_experiment("ntk-width", out=out, overrides=TINY, verbose=False, scheduler="serial")
    return out


@pytest.fixture
def out(results, tmp_path):
    """A private copy of the results folder (tests may corrupt it)."""
    return Path(shutil.copytree(results, tmp_path / "out"))


@pytest.fixture
def only_ntk_width(monkeypatch):
    """Register only ntk-width, so nothing else is run however many experiments exist."""
    monkeypatch.setattr(registry, "EXPERIMENT_MODULES", ["ntkdyn.figures.ntk_width"])


class Page(HTMLParser):
    """Table rows as lists of cell texts, image sources, and every URL-bearing attribute."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self.urls, self.tags = [], [], [], set()
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        self.urls += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path) -> Page:
    page = Page()
    page.feed(Path(path).read_text())
    page.close()
    return page


def expected_rows(record):
    """``[name, kind, value, target, verdict]`` per number, formatted independently."""
    rows = []
    for key, value in record["agreement"].items():
        low, high = record["targets"][key]
        text = (f"[{low:g}, {high:g}]" if low is not None and high is not None
                else f"<= {high:g}" if low is None else f">= {low:g}")
        ok = (low is None or value >= low) and (high is None or value <= high)
        rows.append([key, record["kinds"][key], f"{value:.6g}", text, "holds" if ok else "FAILS"])
    return rows


def test_html_report_embeds_every_figure_and_number(out):
    paths = build_report(out, quiet=True, run_missing=False)
    assert paths == [out / "report.html", out / "report.md", out / "report.csv"]
    record = json.loads((out / "ntk-width.json").read_text())
    page = parse(out / "report.html")

    assert len(page.images) == 1
    (src,) = page.images
    assert src.startswith("data:image/png;base64,")
    png = base64.b64decode(src.split(",", 1)[1], validate=True)
    assert png[:8] == PNG_SIGNATURE and png == (out / "ntk-width.png").read_bytes()
    # self-contained: no scripts, no stylesheets or images fetched, only in-page links
    assert not page.tags & {"script", "link", "iframe", "object"}
    assert all(u.startswith(("data:", "#")) for u in page.urls), page.urls

    rows = expected_rows(record)
    assert len(rows) == len(record["targets"]) == 4
    for row in rows:
        assert row in page.rows
    agreements = [row for row in rows if row[1] == "agreement"]
    held = sum(row[4] == "holds" for row in agreements)
    summary = [r for r in page.rows if r and r[0] == "ntk-width"]
    controls = record["controls"]
    rejected = sum(bool(c["fails"]) for c in controls.values())
    assert summary and summary[0][1:3] == [f"{held} / {len(agreements)}",
                                           f"{rejected} / {len(controls)}"]
    text = (out / "report.html").read_text()
    assert f"agreements held {held}/{len(agreements)}, controls rejected " in text
    for name, control in controls.items():
        assert [name, control["description"], ", ".join(control["fails"])] in page.rows
    for key, value in record["config"].items():
        assert [key, value if isinstance(value, str) else json.dumps(value)] in page.rows
    assert registry.get_experiment("ntk-width").description in text


def test_markdown_twin_links_the_png_and_lists_every_number(out):
    build_report(out, quiet=True, run_missing=False)
    markdown = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert links == ["ntk-width.png"] and (out / links[0]).read_bytes()[:8] == PNG_SIGNATURE
    record = json.loads((out / "ntk-width.json").read_text())
    for key, kind, value, target, verdict in expected_rows(record):
        verdict = "holds" if verdict == "holds" else "**FAILS**"
        assert f"| `{key}` | {kind} | {value} | {target} | {verdict} |" in markdown
    assert "### Controls" in markdown


def test_experiments_without_results_are_listed_as_not_run(tmp_path, only_ntk_width):
    build_report(tmp_path, quiet=True, run_missing=False)
    page = parse(tmp_path / "report.html")
    assert ["ntk-width", "\u2013", "\u2013", "\u2013", "\u2013", "not run"] in page.rows
    assert page.images == []
    assert "*not run*: `ntkdyn run ntk-width" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "ntk-width.json").exists()


def test_missing_experiments_are_run_with_their_overrides(tmp_path, only_ntk_width):
    build_report(tmp_path, quiet=True, overrides_for={"ntk-width": TINY})
    record = json.loads((tmp_path / "ntk-width.json").read_text())
    assert record["config"]["log2_widths"] == TINY["log2_widths"]
    page = parse(tmp_path / "report.html")
    assert len(page.images) == 1 and all(row in page.rows for row in expected_rows(record))
    with pytest.raises(ValueError, match="overrides_for names unknown experiments"):
        build_report(tmp_path, quiet=True, overrides_for={"no-such": {}})


def _truncate(p):
    p.write_text(p.read_text()[:50])


def _replace(key, value):
    def corrupt(p):
        record = json.loads(p.read_text())
        record[key] = value
        p.write_text(json.dumps(record))
    return corrupt


def _replace_target(value):
    def corrupt(p):
        record = json.loads(p.read_text())
        record["targets"]["slope_fit_minus_theory"] = value
        p.write_text(json.dumps(record))
    return corrupt


@pytest.mark.parametrize("corrupt,message", [
    (_truncate, "not valid JSON"),
    (lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
    (_replace("agreement", {"slope_fit": "steep"}), "agreement 'slope_fit'"),
    (_replace_target([1]), "target 'slope_fit_minus_theory'"),
    (_replace_target([None, None]), "target 'slope_fit_minus_theory'"),
    (_replace("targets", {}), "number 'slope_fit_minus_theory' has no target"),
    (_replace("kinds", {}), "has kind None"),
    (_replace("controls", []), "'controls' must be an object"),
    (_replace("experiment", "other"), "records experiment 'other'"),
    (lambda p: p.with_suffix(".png").unlink(), "has no figure"),
])
def test_malformed_results_stop_the_report_with_one_line(out, corrupt, message, capsys,
                                                        only_ntk_width):
    corrupt(out / "ntk-width.json")
    with pytest.raises(ValueError, match=message) as info:
        build_report(out, quiet=True)
    assert str(out / "ntk-width") in str(info.value) and "\n" not in str(info.value)
    assert cli.main(["report", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(out / "ntk-width") in err
    assert not (out / "report.html").exists() and not (out / "report.md").exists()


def test_cli_report_prints_the_written_paths(out, capsys, only_ntk_width):
    assert cli.main(["report", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "report.html"), str(out / "report.md"), str(out / "report.csv")]


# The probe runs in a test-side copy of the page: after load it writes, into a <pre>, how many
# images there are, how many loaded (complete with naturalWidth > 0), and every window error
# or console.error call.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("failed to load " + (e.target && e.target.tagName)));
}, true);
var __consoleError = console.error;
console.error = function () {
  window.__errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
  __consoleError.apply(console, arguments);
};
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var pre = document.createElement("pre");
  pre.id = "browser-check";
  pre.textContent = JSON.stringify({images: images.length, errors: window.__errors,
    loaded: images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length});
  document.body.appendChild(pre);
});
</script>"""

BROKEN = ('<img src="data:image/png;base64,AAAA" alt="broken">'
          '<script>console.error("probe"); notDefined();</script>')


class BrowserCheck(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside, self.text = False, []

    def handle_starttag(self, tag, attrs):
        self.inside = self.inside or ("id", "browser-check") in attrs

    def handle_endtag(self, tag):
        self.inside = self.inside and tag != "pre"

    def handle_data(self, data):
        if self.inside:
            self.text.append(data)


def open_in_chromium(page: Path, profile: Path) -> tuple[dict, list[str]]:
    """Load ``page`` in headless Chromium; the probe's findings and the console error lines."""
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    check = BrowserCheck()
    check.feed(proc.stdout)
    assert check.text, "the probe wrote nothing: the page's load event never ran"
    console_errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line
                      and ("error" in line.lower() or "Uncaught" in line)]
    return json.loads("".join(check.text)), console_errors


def test_page_loads_in_headless_chromium_without_errors(out, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian package `chromium`; .ci/run installs it): "
                    "the real-browser check of the report did not run")
    build_report(out, quiet=True, run_missing=False)
    html = (out / "report.html").read_text()
    assert html.count("<head>") == 1 and html.count("</body>") == 1
    probed = html.replace("<head>", "<head>" + PROBE, 1)

    page = tmp_path / "probed.html"
    page.write_text(probed)
    found, console_errors = open_in_chromium(page, tmp_path / "profile")
    assert found == {"images": 1, "loaded": 1, "errors": []}
    assert console_errors == []

    # control: the same probe on a page with a broken image and a script error reports both
    control = tmp_path / "control.html"
    control.write_text(probed.replace("</body>", BROKEN + "</body>"))
    found, console_errors = open_in_chromium(control, tmp_path / "profile-control")
    assert found["images"] == 2 and found["loaded"] == 1
    assert "console.error: probe" in found["errors"]
    assert any("notDefined" in e for e in found["errors"])
    assert any("Uncaught" in line and "notDefined" in line for line in console_errors)

"""One figure style for every experiment: print sizes, fonts, a colour-blind-safe cycle, panels.

Every experiment's ``plot(result)`` is decorated with :func:`styled` and lays out its panels
with :func:`panels` (or :func:`grid` for panels spanning several cells), so its figure is made
at print size and can go into a paper as it is:

- widths :data:`SINGLE_COLUMN` (3.4 in) or :data:`DOUBLE_COLUMN` (7.0 in), the two-column
  journal sizes; the figure is saved at that width (``bbox_inches="tight"`` trims only margins);
- every text at least :data:`MIN_FONT_PT` (8 pt) at that size: ticks and legends 8 pt, axis
  labels 8 pt, titles 9 pt;
- at most :data:`MAX_PANELS_PER_ROW` (4) panels in a row, laid out by Matplotlib's constrained
  layout (nothing is clipped, colour bars and legends get their room);
- the Okabe & Ito (2008) colour-blind-safe palette as the colour cycle (:data:`OKABE_ITO`), so
  ``"C0"``, ``"C1"``, ... and un-coloured lines use it; sequential data use ``viridis``.

:func:`check` lists what in a figure breaks these rules; the tests run it on every registered
experiment's smoke figure. Helpers fix recurring axis problems: :func:`time_axis` (a time axis
from 0, never a negative tick), :func:`integer_ticks` and :func:`matrix_ticks` (heads, classes),
:func:`log_ticks` (decades only, no overlapping minor labels), :func:`legend` and
:func:`figure_legend`.
"""
from __future__ import annotations

import functools
import textwrap
from typing import Callable, Sequence

import matplotlib as mpl
import matplotlib.colors as mcolors
import matplotlib.ticker as mticker
import numpy as np
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

SINGLE_COLUMN = 3.4
"""Width in inches of a single-column figure."""
DOUBLE_COLUMN = 7.0
"""Width in inches of a double-column (full-width) figure."""
WIDTHS = {"single": SINGLE_COLUMN, "double": DOUBLE_COLUMN}
MIN_FONT_PT = 8.0
"""Smallest font size, in points at print size."""
FONT_PT = 8.0
TITLE_PT = 9.0
MAX_PANELS_PER_ROW = 4

# Okabe & Ito (2008), "Color universal design": distinguishable with every common colour-vision
# deficiency. Black is kept for theory lines; the cycle starts with the darker colours.
OKABE_ITO = {
    "blue": "#0072B2", "vermillion": "#D55E00", "green": "#009E73", "purple": "#CC79A7",
    "orange": "#E69F00", "sky": "#56B4E9", "yellow": "#F0E442", "black": "#000000",
}
CYCLE = tuple(OKABE_ITO[k] for k in ("blue", "vermillion", "green", "purple", "orange", "sky",
                                     "yellow"))
SEQUENTIAL = "viridis"

RC = {
    "font.size": FONT_PT,
    "axes.titlesize": TITLE_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": FONT_PT,
    "ytick.labelsize": FONT_PT,
    "legend.fontsize": FONT_PT,
    "legend.title_fontsize": FONT_PT,
    "figure.titlesize": TITLE_PT + 1,
    "axes.prop_cycle": cycler(color=list(CYCLE)),
    "axes.linewidth": 0.6,
    "axes.titlepad": 3.0,
    "axes.labelpad": 2.0,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "errorbar.capsize": 2.0,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "xtick.minor.size": 1.6,
    "ytick.minor.size": 1.6,
    "xtick.major.pad": 2.0,
    "ytick.major.pad": 2.0,
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "0.85",
    "legend.borderpad": 0.3,
    "legend.labelspacing": 0.25,
    "legend.handlelength": 1.6,
    "legend.handletextpad": 0.4,
    "legend.borderaxespad": 0.3,
    "legend.columnspacing": 1.0,
    "image.cmap": SEQUENTIAL,
    "savefig.dpi": 300,
    "figure.dpi": 100,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "figure.constrained_layout.hspace": 0.03,
    "figure.constrained_layout.wspace": 0.03,
    "mathtext.fontset": "dejavusans",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}
"""The rcParams applied while a plot function runs (:func:`styled`)."""


def color(i: int) -> str:
    """The ``i``-th colour of the cycle (wrapping around)."""
    return CYCLE[int(i) % len(CYCLE)]


def sequential(n: int, cmap: str = SEQUENTIAL, stop: float = 0.9) -> list:
    """``n`` colours evenly spaced on a perceptually uniform map (for ordered series: widths,
    depths, richness); ``stop < 1`` avoids viridis' pale yellow end."""
    return list(mpl.colormaps[cmap](np.linspace(0.0, stop, max(int(n), 1))))


def context():
    """A context manager applying :data:`RC` (``matplotlib.rc_context``)."""
    return mpl.rc_context(RC)


def _resolve_cycle_colors(fig: Figure) -> None:
    """Replace ``"C<n>"`` colour names on lines and texts by the cycle's colour.

    Matplotlib resolves ``"C<n>"`` when an artist is drawn, with the rcParams of that moment;
    the figure is saved after the plot function (and its style context) has returned.
    """
    def fixed(value):
        if isinstance(value, str) and len(value) > 1 and value[0] == "C" and value[1:].isdigit():
            return mcolors.to_hex(value, keep_alpha=True)
        return value

    for line in fig.findobj(Line2D):
        for getter, setter in (("get_color", "set_color"),
                               ("get_markerfacecolor", "set_markerfacecolor"),
                               ("get_markeredgecolor", "set_markeredgecolor")):
            value = getattr(line, getter)()
            if fixed(value) is not value:
                getattr(line, setter)(fixed(value))
    for text in fig.findobj(Text):
        value = text.get_color()
        if fixed(value) is not value:
            text.set_color(fixed(value))


def finish(fig: Figure) -> Figure:
    """Fix what Matplotlib creates lazily at draw time (tick labels, cycle colours) to the
    style, so the figure keeps it when saved outside :func:`context`."""
    for ax in fig.axes:
        for name, axis_obj in (("x", ax.xaxis), ("y", ax.yaxis)):
            if (axis_obj.get_scale() == "log"
                    and type(axis_obj.get_major_locator()) is mticker.LogLocator):
                log_ticks(ax, name)
            if (axis_obj.get_scale() == "symlog"
                    and type(axis_obj.get_major_locator()) is mticker.SymmetricalLogLocator):
                symlog_ticks(ax, name)
        ax.tick_params(which="both", labelsize=FONT_PT)
        ax.tick_params(which="major", length=RC["xtick.major.size"], width=RC["axes.linewidth"])
        ax.tick_params(which="minor", length=RC["xtick.minor.size"])
    _resolve_cycle_colors(fig)
    fig.canvas.draw()  # lay out once: refit the titles to the panels, thin colliding ticks
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if getattr(ax.title, "_ntkdyn_title", None):  # a title may not overhang the figure
            box = ax.get_window_extent(renderer)
            room = min(box.width + 0.05 * fig.dpi,
                       2 * min(box.x0 + box.width / 2, fig.bbox.width - box.x0 - box.width / 2))
            _fit(ax.title, ax.title._ntkdyn_title, room, renderer)
    _thin_linear_ticks(fig, renderer)
    return fig


def _tick_labels_collide(ax, axis_obj, renderer, gap_px: float) -> bool:
    """Whether the major tick labels ``axis_obj`` would draw come closer than ``gap_px``."""
    lo, hi = sorted(axis_obj.get_view_interval())
    ticks = [v for v in axis_obj.get_major_locator()() if lo <= v <= hi]
    labels = axis_obj.get_major_formatter().format_ticks(ticks)
    prop = axis_obj.get_ticklabels()[0].get_fontproperties() if axis_obj.get_ticklabels() else None
    spans = []
    for v, text in zip(ticks, labels):
        if not text:
            continue
        width, _, _ = renderer.get_text_width_height_descent(text, prop, ismath="$" in text)
        x = ax.transData.transform((v, 0))[0] if axis_obj is ax.xaxis else 0.0
        spans.append((x - width / 2, x + width / 2))
    return any(b0 - a1 < gap_px for (a0, a1), (b0, b1) in zip(spans, spans[1:]))


def _thin_linear_ticks(fig: Figure, renderer) -> None:
    """Fewer ticks on a linear x axis whose labels would collide (``0.035 0.040 0.045`` on a
    narrow panel; Matplotlib's automatic count assumes short labels)."""
    for ax in _main_axes(fig):
        axis_obj = ax.xaxis
        if axis_obj.get_scale() != "linear" or type(axis_obj.get_major_locator()) not in (
                mticker.AutoLocator, mticker.MaxNLocator):
            continue
        if not axis_obj.get_ticklabels() or not _tick_labels_collide(ax, axis_obj, renderer,
                                                                     0.3 * FONT_PT):
            continue
        for rescale in (False, True):
            if rescale:
                sci_axis(ax, "x", force=True)
            for nbins in (5, 4, 3, 2):
                axis_obj.set_major_locator(mticker.MaxNLocator(nbins=nbins,
                                                               steps=[1, 2, 2.5, 5, 10]))
                if not _tick_labels_collide(ax, axis_obj, renderer, 0.3 * FONT_PT):
                    break
            else:
                continue
            break
        else:
            axis_obj.set_major_locator(mticker.MaxNLocator(nbins=1, min_n_ticks=1))


def styled(plot: Callable) -> Callable:
    """Decorator for an experiment's ``plot(result) -> Figure``: runs it under :data:`RC` and
    :func:`finish` es the figure."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with context():
            fig = plot(*args, **kwargs)
            return finish(fig)
    wrapper.styled = True
    return wrapper


def _width(width) -> float:
    if isinstance(width, str):
        if width not in WIDTHS:
            raise ValueError(f"width must be 'single', 'double' or inches, got {width!r}")
        return WIDTHS[width]
    if not isinstance(width, (int, float)) or not 0 < width <= DOUBLE_COLUMN:
        raise ValueError(f"width must be 'single', 'double' or inches in (0, {DOUBLE_COLUMN}], "
                         f"got {width!r}")
    return float(width)


def default_columns(n: int) -> int:
    """Columns for ``n`` panels: all in one row up to 4; 5, 6 and 9 as rows of 3; else 4."""
    if n <= MAX_PANELS_PER_ROW:
        return n
    return 3 if n in (5, 6, 9) else MAX_PANELS_PER_ROW


def row_height(ncols: int, width: float, aspect: float = 0.78) -> float:
    """Height in inches of one row of ``ncols`` panels across ``width`` inches: ``aspect`` times
    the panel width, kept between 1.75 in (room for 8 pt labels) and 2.7 in."""
    return float(np.clip(aspect * width / ncols, 1.75, 2.7))


def grid(nrows: int, ncols: int, width="double", height: float | None = None,
         aspect: float = 0.78, **gridspec_kw):
    """A styled, constrained-layout figure and a ``nrows x ncols`` GridSpec to place panels in
    (for panels spanning several cells).

    Parameters
    ----------
    nrows, ncols : int
        Grid cells; ``ncols`` at most :data:`MAX_PANELS_PER_ROW`.
    width : "single", "double" or float
        Figure width: 3.4 in, 7.0 in, or inches up to 7.0.
    height : float, optional
        Figure height in inches; default ``nrows * row_height(ncols, width, aspect)``.

    Returns
    -------
    fig : matplotlib.figure.Figure
    gs : matplotlib.gridspec.GridSpec
    """
    for name, value in (("nrows", nrows), ("ncols", ncols)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if ncols > MAX_PANELS_PER_ROW:
        raise ValueError(f"ncols must be at most {MAX_PANELS_PER_ROW} panels per row, got {ncols}")
    import matplotlib.pyplot as plt

    w = _width(width)
    h = float(height) if height is not None else nrows * row_height(ncols, w, aspect)
    fig = plt.figure(figsize=(w, h), layout="constrained")
    return fig, fig.add_gridspec(nrows, ncols, **gridspec_kw)


def panels(n: int, ncols: int | None = None, width=None, height: float | None = None,
           aspect: float = 0.78, **subplot_kw):
    """A styled figure with ``n`` panels, at most :data:`MAX_PANELS_PER_ROW` per row.

    Parameters
    ----------
    n : int
        Number of panels.
    ncols : int, optional
        Panels per row (default :func:`default_columns`); at most 4.
    width : "single", "double" or float, optional
        Default ``"single"`` (3.4 in) for one panel, ``"double"`` (7.0 in) otherwise.
    height : float, optional
        Figure height in inches (default: rows times :func:`row_height`).
    **subplot_kw
        Passed to ``Figure.add_subplot`` (e.g. ``projection``).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : list of n Axes
        Row by row; cells of the last row beyond ``n`` are left empty.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    ncols = default_columns(n) if ncols is None else ncols
    nrows = -(-n // ncols)
    fig, gs = grid(nrows, ncols, width=("single" if n == 1 else "double") if width is None
                   else width, height=height, aspect=aspect)
    axes = [fig.add_subplot(gs[i // ncols, i % ncols], **subplot_kw) for i in range(n)]
    return fig, axes


def wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters, never inside ``$...$``."""
    words, chunks, inside = text.split(" "), [], False
    for word in words:
        if inside:
            chunks[-1] += " " + word
        else:
            chunks.append(word)
        if word.count("$") % 2:
            inside = not inside
    return "\n".join(textwrap.wrap(" ".join(c.replace(" ", "\0") for c in chunks), width,
                                   break_long_words=False)).replace("\0", " ")


def _fit(handle: Text, text: str, available: float, renderer) -> None:
    """Wrap ``text`` on ``handle`` until it is at most ``available`` pixels wide."""
    handle.set_text(text)
    chars = len(text)
    while chars > 12 and handle.get_window_extent(renderer).width > available:
        chars = int(chars * 0.9)
        handle.set_text(wrap(text, chars))


def title(ax, text: str, **kwargs) -> Text:
    """``ax.set_title(text)``, wrapped (never inside ``$...$``) to fit the panel's width; refitted
    to the laid-out panel by :func:`finish`."""
    fig = ax.get_figure()
    spec = ax.get_subplotspec()
    if spec is not None:
        columns = spec.colspan.stop - spec.colspan.start
        inches = fig.get_figwidth() * columns / spec.get_gridspec().ncols - 0.25
    else:
        inches = ax.get_position().width * fig.get_figwidth()
    handle = ax.set_title(text, **kwargs)
    _fit(handle, text, inches * fig.dpi, fig.canvas.get_renderer())
    handle._ntkdyn_title = text
    return handle


def legend(ax, *args, **kwargs):
    """``ax.legend`` in the style's legend font (8 pt); keyword arguments pass through."""
    kwargs.setdefault("fontsize", FONT_PT)
    return ax.legend(*args, **kwargs)


def figure_legend(fig: Figure, axes=None, ncol: int | None = None, loc: str = "outside lower "
                  "center", handles=None, labels=None, **kwargs):
    """One legend for the whole figure, outside the panels (constrained layout makes room).

    ``handles``/``labels`` default to the unique labelled artists of ``axes`` (default: all).
    """
    if handles is None:
        handles, labels = handles_labels(*(fig.axes if axes is None else axes))
    ncol = ncol or min(len(handles), 4)
    kwargs.setdefault("fontsize", FONT_PT)
    return fig.legend(handles, labels, loc=loc, ncol=max(ncol, 1), **kwargs)


def legend_panel(ax, handles, labels, **kwargs):
    """Use the (spare) panel ``ax`` for a legend only: axis off, the legend centred in it."""
    ax.set_axis_off()
    kwargs.setdefault("fontsize", FONT_PT)
    kwargs.setdefault("loc", "center")
    kwargs.setdefault("frameon", False)
    return ax.legend(handles, labels, **kwargs)


def proxy(**line_kw) -> Line2D:
    """A legend entry that is not drawn: ``proxy(color="k", ls="--")``."""
    return Line2D([], [], **line_kw)


def handles_labels(*axes) -> tuple:
    """The labelled artists of ``axes``, each label once: ``(handles, labels)``."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen)


def time_axis(ax, t, scale: str = "linear", axis: str = "x", linthresh: float | None = None):
    """A time axis over ``t >= 0``: starts at 0 on a linear or symlog scale (no negative tick),
    at the first positive time on a log scale.

    Parameters
    ----------
    t : array_like
        The recorded times (non-negative).
    scale : "linear", "symlog" or "log"
        ``symlog`` is linear on ``[0, linthresh]`` and logarithmic beyond.
    """
    t = np.asarray(t, dtype=float)
    if scale not in ("linear", "symlog", "log"):
        raise ValueError(f"scale must be 'linear', 'symlog' or 'log', got {scale!r}")
    if t.size == 0 or not np.all(np.isfinite(t)) or t.min() < 0:
        raise ValueError("t must be a non-empty array of finite non-negative times")
    set_lim = ax.set_xlim if axis == "x" else ax.set_ylim
    if scale == "log":
        positive = t[t > 0]
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        set_lim(positive.min(), t.max())
        log_ticks(ax, axis)
    elif scale == "symlog":
        positive = t[t > 0]
        thresh = float(linthresh if linthresh is not None else positive.min())
        (ax.set_xscale if axis == "x" else ax.set_yscale)("symlog", linthresh=thresh)
        set_lim(0.0, t.max())
        symlog_ticks(ax, axis)
    else:
        set_lim(0.0, t.max())
    return ax


class LogTicks(mticker.LogLocator):
    """Log-axis ticks: decades, or 1-2-5 steps when the view spans under 1.5 decades (so a short
    log axis still has several labels)."""

    def __init__(self, numticks="auto"):
        super().__init__(base=10.0, subs=(1.0,), numticks=numticks)

    def tick_values(self, vmin, vmax):
        short = vmin > 0 and vmax > 0 and abs(np.log10(vmax / vmin)) < 1.5
        self._subs = np.array([1.0, 2.0, 5.0] if short else [1.0])
        return super().tick_values(vmin, vmax)


class LogLabels(mticker.LogFormatterSciNotation):
    """Labels for :class:`LogTicks`: ``10^k`` at decades on a long axis, plain numbers
    (``50``, ``100``, ``200``) on a short one."""

    def __call__(self, x, pos=None):
        vmin, vmax = sorted(self.axis.get_view_interval()) if self.axis else (0.0, 0.0)
        if vmin > 0 and np.log10(vmax / vmin) < 1.5:
            if x <= 0:
                return ""
            if 1e-3 <= x < 1e5:
                return np.format_float_positional(x, precision=3, unique=True, fractional=False,
                                                  trim="-")
            mantissa, power = f"{x:.0e}".split("e")
            return rf"${mantissa}\times 10^{{{int(power)}}}$"
        return super().__call__(x, pos)


def log_ticks(ax, axis: str = "both", numticks="auto"):
    """:class:`LogTicks` and :class:`LogLabels` on the log axes of ``ax``, minor ticks unlabelled
    (no overlapping ``2x10^1, 3x10^1, ...`` labels). :func:`finish` applies it to every log axis
    that still has Matplotlib's default locator. ``numticks="auto"`` fits the labels to the
    axis length."""
    for name in ("x", "y") if axis == "both" else (axis,):
        axis_obj = ax.xaxis if name == "x" else ax.yaxis
        if axis_obj.get_scale() != "log":
            continue
        axis_obj.set_major_locator(LogTicks(numticks))
        axis_obj.set_major_formatter(LogLabels())
        axis_obj.set_minor_locator(mticker.LogLocator(base=10, subs="auto", numticks=12))
        axis_obj.set_minor_formatter(mticker.NullFormatter())
    return ax


class SymlogTicks(mticker.Locator):
    """Symlog-axis ticks: 0 (when in view) and decades beyond the linear threshold, at most
    ``numticks`` of them, thinned from the smallest magnitude so the extreme decades keep their
    labels."""

    def __init__(self, linthresh: float, numticks: int = 5):
        self.linthresh, self.numticks = float(linthresh), int(numticks)

    def __call__(self):
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin, vmax):
        vmin, vmax = sorted((float(vmin), float(vmax)))
        t = self.linthresh

        def decades(hi):
            if hi <= t:
                return []
            return list(range(int(np.ceil(np.log10(t) - 1e-9)), int(np.floor(np.log10(hi) + 1e-9))
                              + 1))

        pos, neg = decades(vmax), decades(-vmin)
        zero = vmin <= 0 <= vmax
        room = max(self.numticks - zero, 1)
        stride = max(1, -(-(len(pos) + len(neg)) // room))
        pos, neg = pos[::-1][::stride], neg[::-1][::stride]
        ticks = [-(10.0 ** k) for k in neg] + ([0.0] if zero else []) + [10.0 ** k for k in pos]
        return np.array(sorted(ticks))


def symlog_ticks(ax, axis: str = "both", numticks: int | None = None):
    """:class:`SymlogTicks` on the symlog axes of ``ax``: at most ``numticks`` labelled decades
    (default 4 on x, 5 on y), minor ticks unlabelled. :func:`finish` applies it to every symlog
    axis that still has Matplotlib's default locator."""
    for name in ("x", "y") if axis == "both" else (axis,):
        axis_obj = ax.xaxis if name == "x" else ax.yaxis
        if axis_obj.get_scale() != "symlog":
            continue
        linthresh = axis_obj.get_transform().linthresh
        axis_obj.set_major_locator(SymlogTicks(linthresh, numticks or (4 if name == "x" else 5)))
        axis_obj.set_minor_formatter(mticker.NullFormatter())
    return ax


def sci_axis(ax, axis: str = "both", force: bool = False):
    """Put the power of ten of a linear axis into its label (``GD (x 1e-5)``) instead of the
    offset text that Matplotlib draws at the axis end, where it collides with the label of a
    narrow panel. Call after plotting and labelling. Without ``force``, only axes whose values
    reach beyond [0.01, 10^4) are rescaled."""
    for name in ("x", "y") if axis == "both" else (axis,):
        axis_obj = ax.xaxis if name == "x" else ax.yaxis
        lo, hi = (ax.get_xlim() if name == "x" else ax.get_ylim())
        top = max(abs(lo), abs(hi))
        if (axis_obj.get_scale() != "linear" or top == 0 or getattr(axis_obj, "_ntkdyn_sci", 0)
                or (not force and 1e-2 <= top < 1e4)):
            continue
        axis_obj._ntkdyn_sci = 1
        power = int(np.floor(np.log10(top)))
        if power == 0:
            continue
        axis_obj.set_major_formatter(mticker.FuncFormatter(
            lambda v, pos, p=power: f"{v / 10.0 ** p:g}"))
        label = axis_obj.get_label_text()
        axis_obj.set_label_text(f"{label} ($\\times 10^{{{power}}}$)".strip())
    return ax


def integer_ticks(ax, axis: str = "x", nbins="auto"):
    """Integer ticks only (heads, classes, layers, depths)."""
    for name in ("x", "y") if axis == "both" else (axis,):
        axis_obj = ax.xaxis if name == "x" else ax.yaxis
        axis_obj.set_major_locator(mticker.MaxNLocator(nbins=nbins, integer=True))
    return ax


def matrix_ticks(ax, nrows: int, ncols: int, max_labels: int = 10):
    """Integer ticks on the rows and columns of an ``imshow``-ed ``nrows x ncols`` matrix
    (every index up to ``max_labels``, else evenly spaced integers)."""
    for n, set_ticks in ((ncols, ax.set_xticks), (nrows, ax.set_yticks)):
        step = max(1, -(-n // max_labels))
        set_ticks(np.arange(0, n, step))
    return ax


def _main_axes(fig: Figure) -> list:
    """Visible panels: not colour bars, not insets."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison and not ax.has_data() and not ax.images:
            continue
        if ax.get_label() == "<colorbar>" or hasattr(ax, "_colorbar"):
            continue
        if any(ax in other.child_axes for other in fig.axes if other is not ax):
            continue
        out.append(ax)
    return out


def panels_per_row(fig: Figure, draw: bool = True) -> int:
    """The most panels (colour bars and insets left out) sharing one row of the figure."""
    if draw:
        fig.canvas.draw()
    boxes = [ax.get_position() for ax in _main_axes(fig)]
    most = 0
    for a in boxes:
        row = [b for b in boxes
               if min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5 * min(a.height, b.height)]
        most = max(most, len(row))
    return most


def check(fig: Figure, min_pt: float = MIN_FONT_PT, max_per_row: int = MAX_PANELS_PER_ROW
          ) -> list:
    """What in ``fig`` breaks the style, as one line each (empty: the figure is print-ready).

    Checks the width (3.4 or 7.0 in), that nothing is drawn beyond it, every drawn text at least
    ``min_pt`` points at that size (tick labels, legends, titles, annotations) and at most
    ``max_per_row`` panels in a row.
    """
    problems = []
    w, h = fig.get_size_inches()
    if not any(abs(w - width) < 0.01 for width in WIDTHS.values()):
        problems.append(f"figure width {w:.2f} in is neither {SINGLE_COLUMN} nor {DOUBLE_COLUMN}")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    extent = fig.get_tightbbox(renderer)
    if extent.width > w + 0.05:
        problems.append(f"drawn content {extent.width:.2f} in wide exceeds the figure ({w:.2f})")
    small = {}
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if text.get_fontsize() < min_pt - 1e-9:
            small.setdefault(round(text.get_fontsize(), 2), []).append(text.get_text()[:30])
    for size, texts in sorted(small.items()):
        problems.append(f"{len(texts)} text(s) at {size:g} pt < {min_pt:g} pt, e.g. {texts[0]!r}")
    most = panels_per_row(fig, draw=False)
    if most > max_per_row:
        problems.append(f"{most} panels in one row (at most {max_per_row})")
    problems += [f"texts overlap: {a!r} and {b!r}"
                 for a, b in overlapping_texts(fig, draw=False)]
    return problems


def _drawn_texts(ax, renderer) -> list:
    """``(text, bbox)`` of the tick labels, axis labels and title that ``ax`` draws (rotated
    ones left out)."""
    out = []
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label]
    for axis_obj in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis_obj.get_view_interval())
        for tick in axis_obj.get_major_ticks() + axis_obj.get_minor_ticks():
            if lo - 1e-12 * (abs(lo) + abs(hi)) <= tick.get_loc() <= hi * (1 + 1e-12) + 1e-300:
                texts += [tick.label1, tick.label2]
    for text in texts:  # a rotated label's box is no measure of its glyphs: left out
        if text.get_visible() and text.get_text().strip() and text.get_rotation() % 90 == 0:
            out.append((text.get_text(), text.get_window_extent(renderer)))
    return out


def overlapping_texts(fig: Figure, tolerance_px: float = 1.0, draw: bool = True) -> list:
    """Pairs of texts (tick labels, axis labels, titles) that overlap: within a panel (tick
    labels running into each other) or across panels (the x labels of two narrow
    neighbours)."""
    if draw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels_texts = [_drawn_texts(ax, renderer) for ax in fig.axes if ax.get_visible()]

    def overlap(a, b, gap=-tolerance_px):
        return (min(a.x1, b.x1) - max(a.x0, b.x0) > -gap
                and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance_px)

    out = []
    for i, first in enumerate(panels_texts):  # within a panel, labels must not even touch
        out += [(ta, tb) for j, (ta, a) in enumerate(first) for tb, b in first[j + 1:]
                if overlap(a, b, gap=0.15 * FONT_PT * fig.dpi / 72)]
        for second in panels_texts[i + 1:]:
            out += [(ta, tb) for ta, a in first for tb, b in second if overlap(a, b)]
    return out


def numbers_in_titles(fig: Figure) -> list:
    """Titles that quote a measured-looking number: three or more significant digits
    (``"slope 0.512"``, ``"t = 0.0333"``) or a percentage. These belong in a legend or the JSON;
    a panel's parameter (``"init scale 0.5"``, ``"m = 4096"``) may stay."""
    import re

    number = re.compile(r"(?<![\w^{])(\d+\.\d+|\d+)(?:e[-+]?\d+)?(%?)")

    def measured(text):
        for digits, percent in number.findall(text.replace("$", " ")):
            significant = digits.replace(".", "").lstrip("0")
            if percent or ("." in digits and len(significant) >= 3):
                return True
        return False

    texts = [ax.get_title(loc=loc) for ax in fig.axes for loc in ("left", "center", "right")]
    if fig._suptitle is not None:
        texts.append(fig._suptitle.get_text())
    return [t for t in texts if measured(t)]


__all__: Sequence[str] = [
    "SINGLE_COLUMN", "DOUBLE_COLUMN", "MIN_FONT_PT", "MAX_PANELS_PER_ROW", "OKABE_ITO", "CYCLE",
    "RC", "color", "sequential", "context", "styled", "finish", "grid", "panels", "wrap",
    "title", "legend", "figure_legend", "legend_panel", "handles_labels", "proxy", "time_axis",
    "log_ticks", "LogTicks", "LogLabels", "symlog_ticks", "SymlogTicks", "sci_axis",
    "integer_ticks", "matrix_ticks", "check", "panels_per_row", "overlapping_texts",
    "numbers_in_titles",
]

"""The figure style: print widths, fonts >= 8 pt at print size, at most four panels per row,
the colour-blind-safe cycle, tick helpers; every registered experiment's plot uses it (its
smoke figure passes :func:`ntkdyn.figures.style.check`)."""
import inspect
import re

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
import pytest

from ntkdyn.figures import registry, style

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# smoke computations of under a second each: their figures are checked by default (il-kernel's
# short log axis and deep-linear-alignment's time axis are items of the issue); every other
# experiment's smoke figure is checked by the slow test below
FAST = ["il-kernel", "deep-linear-alignment"]
ALL = [path.rsplit(".", 1)[1].replace("_", "-") for path in registry.EXPERIMENT_MODULES]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _smoke_figure(name):
    experiment = registry.get_experiment(name)
    return experiment.plot(experiment.compute_serial(experiment.config("smoke")))


# ------------------------------------------------------------------------ the helpers
@pytest.mark.parametrize("n", [1, 2, 4, 5, 7, 9, 12])
def test_panels_put_at_most_four_in_a_row_at_print_width(n):
    fig, axes = style.panels(n)
    assert len(axes) == n
    assert style.panels_per_row(fig) <= style.MAX_PANELS_PER_ROW
    width = style.SINGLE_COLUMN if n == 1 else style.DOUBLE_COLUMN
    assert fig.get_figwidth() == pytest.approx(width)


def test_grid_and_panels_refuse_bad_layouts():
    with pytest.raises(ValueError, match="ncols"):
        style.grid(1, 5)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        style.panels(0)
    with pytest.raises(ValueError, match="width"):
        style.panels(2, width=9.0)
    with pytest.raises(ValueError, match="width"):
        style.panels(2, width="wide")


def test_styled_plot_uses_the_fonts_and_the_okabe_ito_cycle_after_it_returns():
    @style.styled
    def plot():
        fig, (ax,) = style.panels(1)
        ax.plot([0, 1], [0, 1], label="a")
        ax.plot([0, 1], [1, 0], color="C1", label="b")
        ax.set(xlabel="x", ylabel="y", title="t")
        ax.legend()
        return fig

    fig = plot()
    ax = fig.axes[0]
    first, second = ax.get_lines()
    # the cycle and "C1" are the style's although the figure is drawn outside the style
    assert mcolors.to_hex(first.get_color()) == style.OKABE_ITO["blue"].lower()
    assert mcolors.to_hex(second.get_color()) == style.OKABE_ITO["vermillion"].lower()
    assert style.check(fig) == []
    fig.canvas.draw()
    sizes = {t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()}
    assert min(sizes) >= style.MIN_FONT_PT
    assert ax.xaxis.get_ticklabels()[0].get_fontsize() == style.FONT_PT


def test_the_cycle_is_okabe_ito():
    assert style.CYCLE[:3] == ("#0072B2", "#D55E00", "#009E73")
    assert set(style.CYCLE) <= set(style.OKABE_ITO.values())
    assert len(set(style.CYCLE)) == len(style.CYCLE) == 7


def test_check_reports_a_matplotlib_default_figure():
    fig, axes = plt.subplots(1, 5, figsize=(15, 3))
    axes[0].plot([1, 2], label="a")
    axes[0].legend(fontsize=6)
    problems = style.check(fig)
    assert any("width 15.00" in p for p in problems)
    assert any("6 pt < 8 pt" in p for p in problems)
    assert any("5 panels in one row" in p for p in problems)


def test_check_reports_overlapping_tick_labels():
    fig, (ax,) = style.panels(1, width=1.2)
    ax.set_xlim(0, 1)
    ax.set_xticks(np.linspace(0, 1, 11), [f"{v:.4f}" for v in np.linspace(0, 1, 11)])
    assert any("texts overlap" in p for p in style.check(fig))


def test_time_axis_starts_at_zero_without_a_negative_tick():
    # the "-10^0" tick of deep-linear-* on a symlog time axis
    t = np.linspace(0.0, 300.0, 50)
    fig, (ax,) = style.panels(1)
    ax.plot(t, np.tanh(t))
    style.time_axis(ax, t, scale="symlog", linthresh=1.0)
    style.finish(fig)
    fig.canvas.draw()
    low, high = ax.get_xlim()
    assert low == 0.0 and high == 300.0
    ticks = [v for v in ax.xaxis.get_major_locator()() if low <= v <= high]
    assert min(ticks) == 0.0 and {1.0, 10.0, 100.0} <= set(ticks)
    with pytest.raises(ValueError, match="non-negative"):
        style.time_axis(ax, [-1.0, 1.0])
    with pytest.raises(ValueError, match="scale"):
        style.time_axis(ax, t, scale="logit")


def test_short_log_axis_gets_several_labels_that_do_not_collide():
    # il-kernel panel 3: 2x10^2, 3x10^2, 4x10^2 ran into each other on an axis of < 1 decade
    fig, (ax,) = style.panels(1, width=1.8)
    ax.loglog([45.0, 440.0], [0.03, 1.3], "o")
    style.finish(fig)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    low, high = ax.get_xlim()
    shown = [v for v, t in zip(ax.get_xticks(), ax.get_xticklabels())
             if t.get_text() and low <= v <= high]
    assert len(shown) >= 2 and "100" in labels
    assert style.overlapping_texts(fig) == []


def test_integer_and_matrix_ticks():
    fig, (a, b) = style.panels(2)
    a.plot([0, 1, 2, 3], [0.1, 0.4, 0.2, 0.3])
    style.integer_ticks(a, "x")
    b.imshow(np.eye(4))
    style.matrix_ticks(b, 4, 4)
    fig.canvas.draw()
    assert all(float(v).is_integer() for v in a.get_xticks())
    assert list(b.get_yticks()) == [0, 1, 2, 3]


def test_numbers_in_titles_flags_measured_values_only():
    fig, axes = style.panels(4)
    for ax, text in zip(axes, ("init scale 0.5", "joint slope 0.512", "max err 0.47% of s",
                               "m = 4096")):
        ax.set_title(text)
    assert style.numbers_in_titles(fig) == ["joint slope 0.512", "max err 0.47% of s"]


def test_title_wraps_outside_math_and_fits_the_panel():
    assert style.wrap(r"growth of $K_W^{cc} z$ along own class", 12).count("$") == 2
    assert "$K_W^{cc}\nz$" not in style.wrap(r"growth of $K_W^{cc} z$ along own class", 12)
    fig, axes = style.panels(4)
    style.title(axes[0], "a rather long title that cannot fit on one narrow panel")
    style.finish(fig)
    assert "\n" in axes[0].get_title()
    assert style.check(fig) == []


# ------------------------------------------------------------ every experiment uses it
@pytest.mark.parametrize("name", ALL)
def test_every_plot_is_styled_and_lays_out_through_the_style(name):
    plot = registry.get_experiment(name).plot
    assert getattr(plot, "styled", False), f"{name}: plot is not decorated with @style.styled"
    source = inspect.getsource(inspect.unwrap(plot))
    assert "plt.subplots" not in source and "figsize" not in source, name
    assert "tight_layout" not in source, name  # constrained layout does it
    small = [float(v) for v in re.findall(r"(?:fontsize|labelsize)=(\d+(?:\.\d+)?)", source)]
    assert all(v >= style.MIN_FONT_PT for v in small), (name, small)


def _assert_print_ready(name, fig):
    assert style.check(fig) == [], (name, style.check(fig))
    assert style.numbers_in_titles(fig) == [], (name, style.numbers_in_titles(fig))


@pytest.mark.parametrize("name", FAST)
def test_smoke_figures_are_print_ready(name):
    fig = _smoke_figure(name)
    _assert_print_ready(name, fig)
    if name.startswith("deep-linear"):  # time axes start at 0: no negative tick
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_xlabel().startswith("t"):
                low, high = ax.get_xlim()
                assert low >= 0 and all(
                    v >= 0 for v in ax.get_xticks() if low <= v <= high), (name, ax.get_title())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(ALL) - set(FAST)))
def test_smoke_figures_are_print_ready_slow(name):
    fig = _smoke_figure(name)
    _assert_print_ready(name, fig)
    if name == "nfa-training":  # seven panels used to sit in one row
        assert style.panels_per_row(fig) <= 4 and len(style._main_axes(fig)) >= 7
    if name in ("specialization", "specialization-matrix"):  # head axes: integer ticks
        fig.canvas.draw()
        heads = [ax for ax in fig.axes if "head" in ax.get_ylabel()]
        assert heads
        for ax in heads:
            assert all(float(v).is_integer() for v in ax.get_yticks())

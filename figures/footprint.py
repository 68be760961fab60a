"""Peak-memory estimates of experiment configurations, made before any work.

Each experiment estimates the peak bytes of computing a configuration
(``Experiment.memory(config)``, else :func:`default_memory`) from its size keys alone; the
runner (:func:`ntkdyn.figures.runner.check_memory`) refuses a configuration whose estimate
exceeds the budget of :func:`ntkdyn.numerics.memory.require_memory`, naming the key to reduce
(:func:`memory_hint`). The estimates count the arrays of the largest single computation (for a
sweep: its largest run) plus what the combined results hold; the interpreter and the libraries
already loaded are not counted (the budget is what is left beside them). They are checked
against tracemalloc peaks within a factor of about 2 (``tests/figures/test_config_types.py``
and the closing report of issue 17).

The building blocks: the sizes a configuration asks for (:func:`input_dim`, :func:`output_dim`,
:func:`num_inputs`, :func:`largest_width`, :func:`largest_depth`, :func:`mlp_widths`) and the
array sizes of :mod:`ntkdyn.numerics.memory` (:func:`network_bytes`, :func:`gram_bytes`,
:func:`empirical_ntk_bytes`, :func:`estimate_bytes`), re-exported here. Every size is a Python
integer, so an absurd configuration gives an absurd number, never an overflow.
"""
from __future__ import annotations

from ..numerics.memory import (FLOAT64_BYTES, empirical_ntk_bytes, estimate_bytes,  # noqa: F401
                               gram_bytes, network_bytes)

__all__ = [
    "FLOAT64_BYTES",
    "RUN_OVERHEAD_BYTES",
    "STEP_KEYS",
    "bookkeeping_bytes",
    "data_bytes",
    "default_memory",
    "empirical_ntk_bytes",
    "estimate_bytes",
    "gram_bytes",
    "input_dim",
    "largest_depth",
    "largest_width",
    "memory_drivers",
    "memory_hint",
    "mlp_widths",
    "network_bytes",
    "num_inputs",
    "output_dim",
    "parameter_count",
    "replicate_count",
]

_WIDTH_KEYS = ("width", "wide_width", "random_width")
_LIST_WIDTH_KEYS = ("widths", "deep_widths")
#: Python objects the runner keeps per run of a sweep (the point, its seed, futures, paths).
RUN_OVERHEAD_BYTES = 4096


def input_dim(config: dict) -> int:
    """The input dimension: the data set's (a real one ignores ``d``), else ``d`` (1 if none)."""
    from ..numerics import datafiles
    specs = getattr(datafiles, "_SPECS", {})
    names = list(config.get("datasets") or []) + [config.get("dataset")]
    dims = [specs[name].dim for name in names if name in specs and specs[name].dim]
    return max(dims + [int(config.get("d", 1))])


def output_dim(config: dict) -> int:
    """Outputs of the network: one per class (10 for a labelled set without ``classes``, 4 for
    ``synthetic-mixture``), one for ``"odd-even"`` and the regression tasks."""
    classes = config.get("classes")
    if isinstance(classes, list):
        return max(1, len(classes))
    if classes == "odd-even":
        return 1
    names = list(config.get("datasets") or []) + [config.get("dataset")]
    if any(name and not str(name).startswith("synthetic-") for name in names):
        return 10
    return 4 if "synthetic-mixture" in names else 1


def num_inputs(config: dict) -> int:
    """Training plus test inputs: ``n``, else ``n_train + n_test`` (the larger if both)."""
    both = int(config.get("n_train", 0)) + int(config.get("n_test", 0))
    return max(int(config.get("n", 0)), both, 1)


def largest_width(config: dict) -> int:
    """The widest hidden layer any key asks for (``width``, ``widths``, ``2 ** log2_widths``,
    ``wide_width``, ...; 1 if none)."""
    widths = [int(config[k]) for k in _WIDTH_KEYS if k in config]
    widths += [int(m) for k in _LIST_WIDTH_KEYS for m in config.get(k, [])]
    widths += [2 ** int(w) for w in config.get("log2_widths", [])]
    return max(widths + [1])


def largest_depth(config: dict) -> int:
    """Weight matrices of the deepest network (``depths``, ``hidden_layers + 1``; 2 if none)."""
    depths = [int(L) for L in config.get("depths", [])]
    if "hidden_layers" in config:
        depths.append(int(config["hidden_layers"]) + 1)
    return max(depths + [2])


def replicate_count(config: dict) -> int:
    """Independent replicates: ``seeds`` or ``replicates`` (1 if neither)."""
    return max(int(config.get("seeds", 1)), int(config.get("replicates", 1)), 1)


def mlp_widths(config: dict, width: int | None = None, depth: int | None = None,
               outputs: int | None = None) -> list[int]:
    """``[input_dim, m, ..., m, output_dim]`` of the configuration's largest network (or of the
    given ``width``, ``depth`` = number of weight matrices, ``outputs``)."""
    m = largest_width(config) if width is None else int(width)
    L = largest_depth(config) if depth is None else int(depth)
    k = output_dim(config) if outputs is None else int(outputs)
    return [input_dim(config)] + [m] * (L - 1) + [k]


def parameter_count(widths) -> int:
    """Weights of ``MLP(widths)``: ``sum_l n_l n_{l-1}``."""
    widths = [int(w) for w in widths]
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


#: Keys that count steps, records or iterations: each kept as (at least) one float per
#: replicate (loss curves, record schedules).
STEP_KEYS = ("steps", "max_steps", "wide_steps", "grid_steps", "num_records", "num_times",
             "iterations", "rfm_iterations", "chunk_steps")


def data_bytes(config: dict) -> int:
    """The data: inputs and targets of every split (:func:`num_inputs` rows of
    :func:`input_dim` + :func:`output_dim` numbers), raw, preprocessed and split: three
    copies."""
    rows = num_inputs(config) * max(1, len(config.get("datasets") or [None]))
    return 3 * FLOAT64_BYTES * rows * (input_dim(config) + output_dim(config))


def bookkeeping_bytes(config: dict) -> int:
    """What every experiment keeps per step and per replicate: one float per step, record and
    iteration (:data:`STEP_KEYS`) and :data:`RUN_OVERHEAD_BYTES` per replicate."""
    steps = sum(int(config[k]) for k in STEP_KEYS if k in config)
    reps = replicate_count(config)
    return reps * (FLOAT64_BYTES * steps + RUN_OVERHEAD_BYTES)


def default_memory(config: dict) -> int:
    """A generic peak-memory estimate from the size keys, in bytes.

    The largest network (:func:`mlp_widths`) trained on every input
    (:func:`ntkdyn.numerics.memory.network_bytes` on :func:`num_inputs` rows), four
    ``(N, N)`` kernels per output head (initial, current, an eigendecomposition and a
    temporary) and, per replicate, two more kept in the result. An experiment whose peak has
    another shape passes its own ``memory``.
    """
    n, k = num_inputs(config), output_dim(config)
    return (network_bytes(mlp_widths(config), n) + gram_bytes(n, count=4 * k)
            + replicate_count(config) * gram_bytes(n, count=2))


# ---------------------------------------------------------------------- the key to reduce
def _halved(kind, value):
    """``value`` with every integer halved (kept inside ``kind``'s range) and every positive
    number halved; ``None`` if it has nothing to halve."""
    from .config_types import Float, Int, ListOf
    if isinstance(kind, Int) and isinstance(value, int) and not isinstance(value, bool):
        low = kind.low if kind.low is not None else 0
        half = max(low, value // 2)
        return half if half != value else None
    if isinstance(kind, Float) and isinstance(value, float) and value > 0 \
            and kind.low is not None and kind.low >= 0:
        return value / 2
    if isinstance(kind, ListOf) and isinstance(value, list) and value:
        items = [_halved(kind.item, v) for v in value]
        if all(i is None for i in items):
            return None
        return [v if i is None else i for v, i in zip(value, items)]
    return None


def memory_drivers(experiment, config: dict) -> list[str]:
    """The size keys (integers, positive numbers, lists of them) whose halving cuts
    ``experiment``'s memory estimate, the most effective first."""
    base = experiment.memory_bytes(config)
    cuts = []
    for key, value in config.items():
        reduced = _halved(experiment.config_type(key), value)
        if reduced is None:
            continue
        try:
            after = experiment.memory_bytes(dict(config, **{key: reduced}))
        except Exception:  # noqa: BLE001 - a halved value the estimate cannot take
            continue
        if after < base:
            cuts.append((after, key))
    return [key for _, key in sorted(cuts)]


def memory_hint(experiment, config: dict) -> str:
    """``"reduce KEY (now VALUE)"``: a key set away from every named configuration (an
    override) whose halving cuts the estimate, else the key whose halving cuts it most."""
    from .config_types import short_repr
    from .experiment import CONFIG_NAMES
    keys = memory_drivers(experiment, config)
    if not keys:
        return "use smaller sizes"
    named = [experiment.config(name) for name in CONFIG_NAMES]
    changed = [k for k in keys if all(c.get(k) != config[k] for c in named)]
    keys = changed + [k for k in keys if k not in changed]
    others = f"; also {', '.join(keys[1:3])}" if len(keys) > 1 else ""
    return f"reduce {keys[0]} (now {short_repr(config[keys[0]], 40)}){others}"

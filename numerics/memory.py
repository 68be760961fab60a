"""Memory budgeting: refuse a computation before it allocates more than the process may have.

Every Hessian, Lanczos, kernel or width-sized computation estimates its bytes first
(:func:`estimate_bytes`, :func:`network_bytes`, :func:`empirical_ntk_bytes`,
:func:`gram_bytes`) and calls :func:`require_memory`, which raises :class:`MemoryBudgetError`
when the estimate exceeds ``MEMORY_FRACTION`` of :func:`available_bytes` (docs/conventions.md,
errors).

The memory a process may still allocate is the least of three limits (:func:`memory_limits`):

* ``MemAvailable`` of ``/proc/meminfo`` (what the machine can give without swapping);
* the address-space limit ``RLIMIT_AS`` (``ulimit -v``) less the process's current virtual
  size (``VmSize`` of ``/proc/self/status``);
* the control-group limit (cgroup v2 ``memory.max``, v1 ``memory.limit_in_bytes``, the least
  over the group and its ancestors) less the group's working set (its usage less its inactive
  file cache, which the kernel reclaims first).
"""
from __future__ import annotations

import math
import numbers
import os
import resource
from pathlib import Path

from ..base.validation import one_of, positive_int

__all__ = [
    "FLOAT64_BYTES",
    "MEMORY_FRACTION",
    "MemoryBudgetError",
    "available_bytes",
    "available_memory",
    "empirical_ntk_bytes",
    "estimate_bytes",
    "format_bytes",
    "gram_bytes",
    "memory_limits",
    "network_bytes",
    "require_memory",
]

FLOAT64_BYTES = 8
# Fraction of the currently available memory a computation may claim.
MEMORY_FRACTION = 0.8
# Limits at or above this are "no limit" (cgroup v1 writes 2^63 - 4096 for unlimited).
_UNLIMITED = 2**62
_CGROUP_ROOT = Path("/sys/fs/cgroup")


class MemoryBudgetError(MemoryError, ValueError):
    """A computation would need more memory than the process may allocate.

    Raised *before* the allocation, with the estimated and the available number of bytes.
    It is a ``ValueError`` too, so the CLI reports it as bad input (a size too large).

    Parameters
    ----------
    what : str
        The computation refused (it starts the message).
    needed, available : int
        Estimated bytes and the budget (``MEMORY_FRACTION`` of :func:`available_bytes`).
    hint : str, optional
        What to reduce (ends the message); default "use a smaller width".
    source : str, optional
        Which limit set the budget (:func:`memory_limits`), named in the message.
    """

    def __init__(self, what: str, needed: int, available: int, hint: str | None = None,
                 source: str | None = None):
        self.what = what
        self.needed = int(needed)
        self.available = int(available)
        self.hint = hint
        self.source = source
        limit = f"{MEMORY_FRACTION:.0%} of the memory available"
        if source:
            limit += f", set by {source}"
        super().__init__(
            f"{what} needs about {format_bytes(needed)} but only {format_bytes(available)} of "
            f"memory is available ({limit}); {hint or 'use a smaller width'}")

    def __reduce__(self):  # picklable, so it crosses process-pool boundaries intact
        return type(self), (self.what, self.needed, self.available, self.hint, self.source)


def format_bytes(n: float) -> str:
    """``n`` bytes as ``"12.0 MiB"`` (binary units up to EiB; beyond, a power of ten).

    Parameters
    ----------
    n : float
        A number of bytes (any Python integer, or a float; non-finite allowed).

    Returns
    -------
    str
        The size with its unit.
    """
    try:
        n = float(n)
    except OverflowError:  # an integer beyond any float
        return f"1e+{len(str(abs(int(n)))) - 1} B"
    if not math.isfinite(n):
        return "infinitely many bytes"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            if unit == "EiB" and abs(n) >= 1024:
                return f"{n * 2.0**60:.2g} B"
            return f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} EiB"  # pragma: no cover


_fmt_bytes = format_bytes  # the name used before format_bytes was public


# ------------------------------------------------------------------------------ the budget
def _read_int(path: Path) -> int | None:
    """The integer in a one-value file (``None`` if absent, unreadable or ``max``)."""
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    if not text or text == "max":
        return None
    try:
        return int(text.split()[0])
    except ValueError:
        return None


def _stat_field(path: Path, names) -> int:
    """The first of ``names`` found in a ``memory.stat`` file, else 0."""
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in names:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover - not Linux
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return None


def _virtual_size() -> int:
    """The process's current virtual size in bytes (``VmSize``), 0 if unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    return 0


def _address_space_left() -> int | None:
    """``RLIMIT_AS`` (soft) less the current virtual size; ``None`` when unlimited."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError):  # pragma: no cover
        return None
    if soft == resource.RLIM_INFINITY or soft < 0 or soft >= _UNLIMITED:
        return None
    return max(0, int(soft) - _virtual_size())


def _cgroup_dirs(root: Path = _CGROUP_ROOT, proc_cgroup: str = "/proc/self/cgroup"):
    """``(version, folder)`` pairs of this process's memory cgroup and its ancestors.

    cgroup v2: the ``0::/path`` line; v1: the line naming the ``memory`` controller. In a
    container the group's own folder is usually mounted at the root, so the root is tried too.
    """
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        lines = []
    found = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "" and parts[0] == "0":
            version, base = 2, root
        elif "memory" in controllers.split(","):
            version, base = 1, root / "memory"
        else:
            continue
        rel_parts = [p for p in rel.strip().split("/") if p]
        for depth in range(len(rel_parts), -1, -1):
            folder = base.joinpath(*rel_parts[:depth])
            if folder.is_dir():
                found.append((version, folder))
    if not found:  # no /proc/self/cgroup: the mounted root alone
        found = [(2, root), (1, root / "memory")]
    unique = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def _cgroup_left(root: Path = _CGROUP_ROOT, proc_cgroup: str = "/proc/self/cgroup"):
    """The least, over the memory cgroups of this process, of limit less working set
    (``None`` when no group sets a limit)."""
    best = None
    for version, folder in _cgroup_dirs(root, proc_cgroup):
        if version == 2:
            limit = _read_int(folder / "memory.max")
            usage = _read_int(folder / "memory.current")
            inactive = _stat_field(folder / "memory.stat", ("inactive_file",))
        else:
            limit = _read_int(folder / "memory.limit_in_bytes")
            usage = _read_int(folder / "memory.usage_in_bytes")
            inactive = _stat_field(folder / "memory.stat",
                                   ("total_inactive_file", "inactive_file"))
        if limit is None or limit >= _UNLIMITED:
            continue
        working = max(0, (usage or 0) - inactive)
        left = max(0, limit - working)
        best = left if best is None else min(best, left)
    return best


def memory_limits() -> dict:
    """The limits on new allocations, in bytes, by source (absent sources are left out).

    Returns
    -------
    dict
        Some of ``{"MemAvailable": int, "RLIMIT_AS": int, "cgroup": int}``: the machine's
        available memory, the address space left under ``RLIMIT_AS`` and the room left under
        the control-group limit.
    """
    limits = {"MemAvailable": _meminfo_available(), "RLIMIT_AS": _address_space_left(),
              "cgroup": _cgroup_left()}
    return {k: int(v) for k, v in limits.items() if v is not None}


def available_bytes() -> int:
    """Bytes this process may still allocate: the least of :func:`memory_limits`.

    Returns
    -------
    int
        Bytes (``2^62`` when no limit is known).
    """
    limits = memory_limits()
    return min(limits.values()) if limits else _UNLIMITED


def available_memory() -> int:
    """Alias of :func:`available_bytes` (the name of earlier versions).

    Returns
    -------
    int
        Bytes this process may still allocate.
    """
    return available_bytes()


def require_memory_if_large(nbytes: float, what: str, hint: str | None = None,
                            threshold: int = 256 * 2**20) -> int:
    """:func:`require_memory` for estimates above ``threshold`` bytes (cheap for small sizes).

    Reading the limits costs a few file reads, so hot paths (a kernel recorded at every step)
    only pay it when the allocation could matter.

    Parameters
    ----------
    nbytes : float
        Estimated bytes.
    what : str
        Names the computation in the error message.
    hint : str, optional
        What to reduce.
    threshold : int
        Below this many bytes nothing is checked.

    Returns
    -------
    int
        ``nbytes`` as an integer.
    """
    if nbytes < threshold:
        return int(nbytes)
    return require_memory(nbytes, what, hint=hint)


def require_memory(nbytes: float, what: str, available: int | None = None,
                   hint: str | None = None) -> int:
    """Raise :class:`MemoryBudgetError` unless ``nbytes`` fit in the available memory.

    Call it before allocating anything whose size grows with width or with the data.

    Parameters
    ----------
    nbytes : float
        Estimated bytes (non-finite counts as too many; Python integers of any size are fine).
    what : str
        Names the computation in the error message.
    available : int, optional
        Bytes available; default :func:`available_bytes` (the least of ``MemAvailable``,
        ``RLIMIT_AS`` and the cgroup limit). The budget is ``MEMORY_FRACTION * available``.
    hint : str, optional
        What to reduce, ending the message (default "use a smaller width").

    Returns
    -------
    int
        ``nbytes`` as an integer.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Real):
        raise TypeError(f"nbytes must be a real number of bytes, got {nbytes!r}")
    if isinstance(nbytes, float) and math.isnan(nbytes):
        raise ValueError("nbytes must be a number of bytes, got nan")
    source = None
    if available is None:
        limits = memory_limits()
        avail = min(limits.values()) if limits else _UNLIMITED
        source = min(limits, key=limits.get) if limits else None
    else:
        avail = int(available)
    budget = int(MEMORY_FRACTION * avail)
    try:
        finite = math.isfinite(nbytes)
    except OverflowError:  # an integer too large for a float
        finite = True
    if not finite or nbytes > budget:
        raise MemoryBudgetError(what, int(nbytes) if finite else 2**63, budget, hint, source)
    return int(nbytes)


# ---------------------------------------------------------------------------- estimates
def _sizes(widths) -> list[int]:
    return [positive_int(w, f"widths[{i}]") for i, w in enumerate(widths)]


def estimate_bytes(widths, method: str = "closed_form", n: int = 1, ncv: int = 20) -> int:
    """Bytes needed for an output/loss Hessian computation on ``MLP(widths)``, weights included.

    With ``P`` parameters and ``U = sum(widths)`` units:

    * ``"closed_form"`` (the two-layer kernel): the weights only, ``8 P``;
    * ``"lanczos"``: weights, ``ncv + 8`` parameter-sized Lanczos vectors and the cached
      passes on ``n`` inputs, ``8 (P (ncv + 8) + 12 n U)``;
    * ``"dense"``: weights and a ``P x P`` matrix, ``8 (P + P^2 + 6 n U)``.

    Parameters
    ----------
    widths : sequence of int
        ``[d, n_1, ..., k]`` as for :class:`numerics.networks.MLP`.
    method : {"closed_form", "lanczos", "dense"}
    n : int
        Number of inputs of the cached passes.
    ncv : int
        Number of Lanczos vectors.

    Returns
    -------
    int
        Bytes, a Python integer (no overflow for absurd widths).
    """
    one_of(method, "method", ("closed_form", "lanczos", "dense"))
    n = positive_int(n, "n")
    ncv = positive_int(ncv, "ncv")
    widths = _sizes(widths)
    # Python integers: no overflow for absurd widths.
    P = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    units = sum(widths)
    if method == "closed_form":
        return FLOAT64_BYTES * P
    if method == "lanczos":
        return FLOAT64_BYTES * (P * (ncv + 8) + 12 * n * units)
    return FLOAT64_BYTES * (P + P * P + 6 * n * units)


def network_bytes(widths, n: int = 0, param_copies: int = 6, unit_copies: int = 6,
                  itemsize: int = FLOAT64_BYTES) -> int:
    """Bytes of training ``MLP(widths)`` on ``n`` inputs: parameter- and unit-sized arrays.

    ``itemsize (param_copies P + unit_copies n U)`` with ``P = sum_l n_l n_{l-1}`` weights
    (biases are ``U`` more, inside the unit term) and ``U = sum_l n_l`` units. The defaults
    count the parameters, their gradients, the initial parameters, an optimiser state and two
    temporaries; and, per input and unit, the pre-activations, activations, their derivatives
    and the back-propagated signals with two temporaries.

    Parameters
    ----------
    widths : sequence of int
        ``[d, n_1, ..., k]`` as for :class:`numerics.networks.MLP`.
    n : int
        Number of inputs of one forward/backward pass (>= 0).
    param_copies, unit_copies : int
        Parameter-sized and ``(n, U)``-sized arrays alive at the peak.
    itemsize : int
        Bytes per number.

    Returns
    -------
    int
        A Python integer (no overflow for absurd sizes).
    """
    widths = _sizes(widths)
    n = positive_int(n, "n", minimum=0)
    P = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    units = sum(widths)
    return int(itemsize) * (int(param_copies) * (P + units) + int(unit_copies) * n * units)


def gram_bytes(n: int, n2: int | None = None, count: int = 1,
               itemsize: int = FLOAT64_BYTES) -> int:
    """Bytes of ``count`` Gram matrices of shape ``(n, n2)`` (``n2 = n`` by default).

    Parameters
    ----------
    n, n2 : int
        Rows and columns (``n2 = n`` when ``None``).
    count : int
        Number of matrices.
    itemsize : int
        Bytes per number.

    Returns
    -------
    int
        ``itemsize * count * n * n2``.
    """
    n = positive_int(n, "n", minimum=0)
    n2 = n if n2 is None else positive_int(n2, "n2", minimum=0)
    return int(itemsize) * positive_int(count, "count", minimum=0) * n * n2


def empirical_ntk_bytes(widths, n: int, n2: int | None = None, heads: str = "sum",
                        block_bytes: int = 32 * 2**20, itemsize: int = FLOAT64_BYTES,
                        per_layer: bool = False) -> int:
    """Peak bytes of :func:`ntkdyn.numerics.kernels.empirical_ntk` of ``MLP(widths)``.

    The layer-wise route (depth > 2 or ``heads="full"``) holds the forward pass
    (pre-activations and activations, ``2 n U``) and the back-propagated signals (``k n U``) of
    each input set, the kernel (``(n, n2)`` times ``1``, ``k`` or ``k^2`` for ``heads`` =
    ``"sum"``, ``"each"``, ``"full"``) and two Gram temporaries of the same shape. The two-layer
    route accumulates over blocks of hidden units of about ``block_bytes`` per
    ``(max(n, n2), block)`` slab: the weights, four slabs and four ``(n, n2)`` sums (``k`` of
    them per head).

    Parameters
    ----------
    widths : sequence of int
        ``[d, n_1, ..., k]``.
    n, n2 : int
        Rows of ``X`` and of ``X2`` (``n2 = n``, one input set, by default).
    heads : {"sum", "each", "full"}
    block_bytes : int
        Bytes of one hidden-unit slab of the two-layer route.
    itemsize : int
        Bytes per number.
    per_layer : bool
        One kernel per weight matrix (and bias) instead of their sum: ``2 L`` kernels.

    Returns
    -------
    int
        Bytes, a Python integer.

    Examples
    --------
    The check an owner of :func:`ntkdyn.numerics.kernels.empirical_ntk` makes before any work::

        require_memory(empirical_ntk_bytes(net.widths, len(X), None if X2 is None else len(X2),
                                           heads), f"the empirical NTK on {len(X)} inputs",
                       hint="use fewer inputs or a smaller width")
    """
    one_of(heads, "heads", ("sum", "each", "full"))
    widths = _sizes(widths)
    n = positive_int(n, "n", minimum=0)
    symmetric = n2 is None
    n2 = n if symmetric else positive_int(n2, "n2", minimum=0)
    k = widths[-1]
    P = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    kernel = n * n2 * {"sum": 1, "each": k, "full": k * k}[heads]
    kernels = 2 * (len(widths) - 1) if per_layer else 1
    if len(widths) == 3 and heads != "full":
        slabs = 4 * min(int(block_bytes), itemsize * max(n, n2) * widths[1]) // itemsize
        per_head = k if heads == "each" else 1
        return itemsize * (P + slabs + (n + n2) * widths[0]
                           + (4 * per_head + 2 * kernels) * n * n2)
    units = sum(widths)
    passes = (2 + k) * units * (n if symmetric else n + n2)
    return itemsize * (P + passes + (2 + kernels) * kernel)

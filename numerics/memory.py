"""Memory budgeting: refuse a computation before it allocates more than the machine has.

Every Hessian, Lanczos or width-sized computation estimates its bytes first
(:func:`estimate_bytes`) and calls :func:`require_memory`, which raises
:class:`MemoryBudgetError` when the estimate exceeds ``MEMORY_FRACTION`` of the memory
currently available (docs/conventions.md, errors).
"""
from __future__ import annotations

import os

import numpy as np

from ..base.validation import one_of, positive_int

__all__ = [
    "FLOAT64_BYTES",
    "MEMORY_FRACTION",
    "MemoryBudgetError",
    "available_memory",
    "estimate_bytes",
    "require_memory",
]

FLOAT64_BYTES = 8
# Fraction of the currently available memory a computation may claim.
MEMORY_FRACTION = 0.8


class MemoryBudgetError(MemoryError, ValueError):
    """A computation would need more memory than the machine has available.

    Raised *before* the allocation, with the estimated and the available number of bytes.
    It is a ``ValueError`` too, so the CLI reports it as bad input (a width too large).

    Parameters
    ----------
    what : str
        The computation refused (it starts the message).
    needed, available : int
        Estimated and available bytes.
    """

    def __init__(self, what: str, needed: int, available: int):
        self.what = what
        self.needed = int(needed)
        self.available = int(available)
        super().__init__(
            f"{what} needs about {_fmt_bytes(needed)} but only {_fmt_bytes(available)} of memory "
            f"is available ({MEMORY_FRACTION:.0%} of free memory); use a smaller width")

    def __reduce__(self):  # picklable, so it crosses process-pool boundaries intact
        return type(self), (self.what, self.needed, self.available)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} PiB"  # pragma: no cover


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover - not Linux
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 2**62


def require_memory(nbytes: float, what: str, available: int | None = None) -> int:
    """Raise :class:`MemoryBudgetError` unless ``nbytes`` fit in the available memory.

    Call it before allocating anything whose size grows with width.

    Parameters
    ----------
    nbytes : float
        Estimated bytes (non-finite counts as too many).
    what : str
        Names the computation in the error message.
    available : int, optional
        Bytes available; default :func:`available_memory`. The budget is
        ``MEMORY_FRACTION * available``.

    Returns
    -------
    int
        ``nbytes`` as an integer.
    """
    avail = available_memory() if available is None else int(available)
    budget = int(MEMORY_FRACTION * avail)
    if not np.isfinite(nbytes) or nbytes > budget:
        raise MemoryBudgetError(what, nbytes if np.isfinite(nbytes) else 2**63, budget)
    return int(nbytes)


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
    """
    one_of(method, "method", ("closed_form", "lanczos", "dense"))
    widths = [positive_int(w, f"widths[{i}]") for i, w in enumerate(widths)]
    # Python integers: no overflow for absurd widths.
    P = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    units = sum(widths)
    if method == "closed_form":
        return FLOAT64_BYTES * P
    if method == "lanczos":
        return FLOAT64_BYTES * (P * (ncv + 8) + 12 * n * units)
    return FLOAT64_BYTES * (P + P * P + 6 * n * units)

"""Tests of numerics.memory: estimates from the widths alone, refusal before allocating."""
from __future__ import annotations

import pickle

import pytest

from ntkdyn.numerics.memory import MemoryBudgetError, estimate_bytes, require_memory


def test_memory_is_estimated_before_allocating():
    # 10^11 units x 10 inputs: 8 TB of weights, refused from the widths alone.
    need = estimate_bytes([10, 10**11, 1])
    assert need == 8 * (10**12 + 10**11)
    with pytest.raises(MemoryBudgetError, match="needs about") as info:
        require_memory(need, "a two-layer network of width 1e11")
    assert isinstance(info.value, ValueError) and isinstance(info.value, MemoryError)
    # It survives pickling (process pools send it back from their workers).
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.needed == need
    assert require_memory(1000, "tiny", available=10**6) == 1000
    with pytest.raises(MemoryBudgetError):
        require_memory(10**6, "too big", available=10**6)
    # Lanczos needs ncv + 8 parameter vectors: refused for a net whose weights alone would fit.
    assert estimate_bytes([10, 1000, 1], "lanczos") > 28 * 8 * 11000
    with pytest.raises(ValueError, match="method"):
        estimate_bytes([2, 3], "magic")

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def _fd_jacobian(fn, A, eps=1e-6):
    """Central differences of ``fn`` (rows independent) w.r.t. each column of ``A``: (n, k, d)."""
    cols = []
    for c in range(A.shape[1]):
        E = np.zeros_like(A)
        E[:, c] = eps
        cols.append((fn(A + E) - fn(A - E)) / (2 * eps))
    return np.stack(cols, axis=-1)


@pytest.fixture
def fd_jacobian():
    """Central-difference Jacobian of a row-wise function: ``fd_jacobian(fn, A, eps)``."""
    return _fd_jacobian


@pytest.fixture(scope="session")
def mnist1d_home(tmp_path_factory):
    """A data home for the locally generated MNIST-1D (shared by the tests of one session)."""
    pytest.importorskip("mnist1d")
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def run_on_real_data(request, monkeypatch):
    """``run_on_real_data(module, dataset, **overrides)``: the experiment's smoke config on
    digits or MNIST-1D, computed in-process; checks every declared number is measured and finite
    and that the result records its data; returns the result."""
    def run(module, dataset, **overrides):
        if dataset == "digits":
            pytest.importorskip("sklearn")
        else:
            monkeypatch.setenv("NTKDYN_DATA", str(request.getfixturevalue("mnist1d_home")))
        E = module.EXPERIMENT
        config = dict(E.config("smoke"), dataset=dataset, preprocessing="sphere", **overrides)
        result = E.compute_serial(config)
        numbers = E.measure(result)
        assert set(numbers) == set(E.declared(config))
        assert all(np.isfinite(v) for v in numbers.values()), numbers
        assert str(result["data_name"]) == dataset
        assert str(result["data_preprocessing"]) == "sphere"
        return result
    return run

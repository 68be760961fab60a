"""Ready-made training problems: the data of an experiment's configuration, a network and its
initial parameters.

The data convention of the experiments (docs/conventions.md): a configuration names its data by
the keys of :data:`DATA_KEYS` -- ``dataset``, ``classes`` (``None``, a list of labels or
``"odd-even"``), ``n_train``, ``n_test`` and ``preprocessing`` -- and :func:`load_task` turns them
into a :class:`ntkdyn.numerics.datafiles.DataSplit`. The names are those of
:data:`ntkdyn.numerics.datafiles.DATASETS` (loaded by
:func:`ntkdyn.numerics.datafiles.load_dataset`; a remote set that is not on disk raises the
one-line fetch message) and the two synthetic regression tasks of :data:`SYNTHETIC_TASKS`, which
are generated here. Experiments that share a problem build it here, from one seed, so they train
on exactly the same data and initialisation.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..base.validation import positive_int
from . import datafiles
from .networks import MLP
from .synthetic import low_rank_task, single_index_hermite

# Synthetic regression tasks generated here (inputs x ~ N(0, I_d), no classes, no
# preprocessing): the single-index task of the iterative-linearisation experiments and the
# low-rank task of the neural-feature-ansatz experiments.
SYNTHETIC_TASKS = {"synthetic-single-index": single_index_hermite,
                   "synthetic-low-rank": low_rank_task}
DATA_KEYS = ("dataset", "classes", "n_train", "n_test", "preprocessing")


def task_names() -> tuple[str, ...]:
    """Every name the ``dataset`` key accepts.

    Returns
    -------
    tuple of str
        The synthetic tasks, then :data:`ntkdyn.numerics.datafiles.DATASETS`.
    """
    return tuple(SYNTHETIC_TASKS) + tuple(datafiles.DATASETS)


def _checksum(*arrays) -> str:
    """sha256 over each array's dtype, shape and bytes, as ``DataSplit.info["checksum"]``."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _synthetic_split(config, seed, d) -> datafiles.DataSplit:
    name = config["dataset"]
    if config["classes"] is not None:
        raise ValueError(f"classes: {name!r} is a regression task without classes; "
                         f"use classes = null, got {config['classes']!r}")
    if config["preprocessing"] != "none":
        raise ValueError(f"preprocessing: {name!r} draws x ~ N(0, I_d) and takes "
                         f"preprocessing 'none', got {config['preprocessing']!r}")
    if d is None:
        raise ValueError(f"d: {name!r} needs the input dimension d")
    n = positive_int(config["n_train"], "n_train")
    n_test = positive_int(config["n_test"], "n_test", minimum=0)
    ds = SYNTHETIC_TASKS[name](n + n_test, d, seed=seed)
    no_labels = np.zeros(0, dtype=np.int64)
    info = {"dataset": name, "classes": None, "preprocessing": "none",
            "checksum": _checksum(ds.X, ds.Y), "n_train": n, "n_test": n_test,
            "source": "generated"}
    info.update({k: v for k, v in ds.info.items()})  # e.g. the planted subspace "U"
    return datafiles.DataSplit(X=ds.X[:n], Y=ds.Y[:n], X_test=ds.X[n:], Y_test=ds.Y[n:],
                               labels=no_labels, labels_test=no_labels, info=info)


def load_task(config, seed, d: int | None = None) -> datafiles.DataSplit:
    """The data named by ``config`` (the keys of :data:`DATA_KEYS`), drawn from ``seed``.

    Parameters
    ----------
    config : dict
        Holds ``dataset``, ``classes``, ``n_train``, ``n_test``, ``preprocessing``.
    seed : int, sequence of int, SeedSequence or Generator
        Passed unchanged to the generator (synthetic) or to
        :func:`ntkdyn.numerics.datafiles.load_dataset` (the class-balanced subsets).
    d : int, optional
        Input dimension of the synthetic sets (ignored by the real ones).

    Returns
    -------
    DataSplit
        ``X (n_train, d)``, ``Y (n_train, k)``, ``X_test``, ``Y_test`` and ``info``.
    """
    missing = [k for k in DATA_KEYS if k not in config]
    if missing:
        raise ValueError(f"the configuration lacks the data key(s) {missing}")
    name = config["dataset"]
    if name in SYNTHETIC_TASKS:
        return _synthetic_split(config, seed, d)
    if name not in datafiles.DATASETS:
        raise ValueError(f"dataset: unknown {name!r}; expected one of {list(task_names())}")
    kwargs = {"d": d} if str(name).startswith("synthetic") else {}
    return datafiles.load_dataset(name, n_train=int(config["n_train"]),
                                  n_test=int(config["n_test"]), classes=config["classes"],
                                  preprocessing=config["preprocessing"], seed=seed, **kwargs)


def check_task(config, d: int | None = None) -> None:
    """Raise before any work if the configured data cannot be had.

    Parameters
    ----------
    config : dict
        Holds the keys of :data:`DATA_KEYS`.
    d : int, optional
        Input dimension of the synthetic sets.

    Raises
    ------
    ValueError
        An unknown name, bad classes or sizes.
    ntkdyn.numerics.fetch.DataUnavailable
        A remote set not on disk (the one-line fetch message).
    """
    load_task(config, 0, d)


def data_entries(splits) -> dict:
    """The result entries that the runner records in the JSON's ``data`` field.

    Parameters
    ----------
    splits : DataSplit or sequence of DataSplit
        One split or several (one checksum per split).

    Returns
    -------
    dict
        ``data_name``, ``data_checksum``, ``data_preprocessing`` and ``data_classes``, each a
        numpy array (a string, or a list of checksums or classes).
    """
    splits = [splits] if isinstance(splits, datafiles.DataSplit) else list(splits)
    info = splits[0].info
    classes = info["classes"]
    sums = [s.info["checksum"] for s in splits]
    return {"data_name": np.array(str(info["dataset"])),
            "data_checksum": np.array(sums[0] if len(sums) == 1 else sums),
            "data_preprocessing": np.array(str(info["preprocessing"])),
            "data_classes": np.array("all" if classes is None else
                                     classes if isinstance(classes, str) else
                                     [int(c) for c in classes])}


@dataclass(frozen=True)
class Problem:
    """A network with initial parameters and train/test data.

    Parameters
    ----------
    net : MLP
        The network.
    params : list of numpy.ndarray
        Its initial parameters.
    X : numpy.ndarray, shape (n, d)
        Training inputs.
    Y : numpy.ndarray, shape (n, k)
        Training targets.
    X_test : numpy.ndarray, shape (n_test, d)
        Test inputs.
    Y_test : numpy.ndarray, shape (n_test, k)
        Test targets.
    data : DataSplit, optional
        The split the data came from.
    """

    net: MLP
    params: list
    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    data: datafiles.DataSplit | None = field(default=None, compare=False)

    def __iter__(self):
        """Unpack as ``net, params, X, Y, X_test, Y_test``."""
        return iter((self.net, self.params, self.X, self.Y, self.X_test, self.Y_test))


def scalar_problem(config, width: int, activation: str = "relu", seed=(0,)) -> Problem:
    """A two-layer ``MLP([d, width, 1])`` on the configured data with a scalar target.

    The data come from :func:`load_task` seeded ``[*seed, 0]`` (``d = config["d"]`` for the
    synthetic sets), the weights from ``[*seed, 1]``. A real set needs ``classes = "odd-even"``
    (the ``+-1`` binary task), since the iterative-linearisation theory here is for one output.

    Parameters
    ----------
    config : dict
        Holds the keys of :data:`DATA_KEYS` (and ``d`` for the synthetic sets).
    width : int
        The hidden width.
    activation : str, optional
        The hidden activation.
    seed : sequence of int, optional
        The base of the data's and the weights' seeds.

    Returns
    -------
    Problem
        The network, its initial parameters and the data.
    """
    width = positive_int(width, "width")
    seed = [int(s) for s in seed]
    data = load_task(config, seed + [0], d=config.get("d"))
    if data.Y.shape[1] != 1:
        raise ValueError(f"classes: this experiment needs a scalar target (classes = 'odd-even' "
                         f"for a real data set), got {data.Y.shape[1]} outputs")
    net = MLP([data.X.shape[1], width, 1], activation=activation)
    params = net.init(seed=seed + [1])
    return Problem(net, params, data.X, data.Y, data.X_test, data.Y_test, data)


def single_index_problem(d: int, n_train: int, n_test: int, width: int, activation: str = "relu",
                         seed=(0,)) -> Problem:
    """A two-layer ``MLP([d, width, 1])`` on the single-index task ``y = He_2(w . x) / sqrt(2)``.

    The task of the iterative-linearisation experiments (Goldwaser & Ge 2022, sec. 5): it needs
    feature learning, so the frozen NTK generalises worse than gradient descent. The data come
    from :func:`ntkdyn.numerics.synthetic.single_index_hermite` seeded ``[*seed, 0]`` (the first
    ``n_train`` points train, the rest test) and the weights from ``[*seed, 1]``.

    Parameters
    ----------
    d, n_train, n_test, width : int
        Input dimension, train and test set sizes, hidden width.
    activation : str
        Hidden activation (a name from :data:`ntkdyn.base.activations.ACTIVATIONS`).
    seed : sequence of non-negative int
        E.g. ``(base_seed, replicate)``.

    Returns
    -------
    Problem
        The network, its initial parameters and the data.
    """
    d, n_train = positive_int(d, "d"), positive_int(n_train, "n_train")
    n_test = positive_int(n_test, "n_test")
    config = {"dataset": "synthetic-single-index", "classes": None, "n_train": n_train,
              "n_test": n_test, "preprocessing": "none", "d": d}
    return scalar_problem(config, width, activation, seed)

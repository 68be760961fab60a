"""The real download path against a loopback HTTP server started here (127.0.0.1, a free port).

The server runs in a thread, answers a bounded number of requests within a bounded time and then
stops itself; it serves small files generated here in the real formats (gzipped IDX; a tar.gz of
CIFAR-style pickled batches). Every socket connection other than to 127.0.0.1 is refused.
"""
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import struct
import tarfile
import threading
import time

import numpy as np
import pytest

from ntkdyn.figures.cli import main
from ntkdyn.numerics import fetch
from ntkdyn.numerics.datafiles import read_cifar_batch, read_idx
from ntkdyn.numerics.fetch import DataUnavailable, RemoteDataset, RemoteFile

MAX_REQUESTS = 50
MAX_SECONDS = 60.0


# ------------------------------------------------------------------------- loopback only
@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """No test here may reach a host other than 127.0.0.1 (and no proxy may be used)."""
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise OSError(f"test_fetch: connection to {address[0]!r} refused (loopback only)")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")


def test_guard_refuses_other_hosts():
    with pytest.raises(OSError, match="loopback only"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # refused before any packet


# ------------------------------------------------------------------------- the server
class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.hits.append(self.path)
        kind, payload = server.routes.get(self.path, ("404", b""))
        if kind == "hang":  # accept, read the request, never answer (until the test ends)
            server.stop.wait(MAX_SECONDS)
            return
        if kind == "404":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if kind == "cut":  # half the promised bytes, then the connection is closed
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)


class LoopbackServer:
    """``routes``: path -> ("ok" | "cut" | "hang" | "404", bytes). ``url(path)``, ``hits``."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.timeout = 0.1
        self.httpd.routes, self.httpd.hits = {}, []
        self.httpd.lock, self.httpd.stop = threading.Lock(), threading.Event()
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        deadline = time.monotonic() + MAX_SECONDS
        while (not self.httpd.stop.is_set() and time.monotonic() < deadline
               and len(self.httpd.hits) < MAX_REQUESTS):
            self.httpd.handle_request()
        self.httpd.stop.set()
        self.httpd.server_close()

    def add(self, path, payload=b"", kind="ok"):
        self.httpd.routes[path] = (kind, payload)
        return self.url(path)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def hits(self):
        return list(self.httpd.hits)

    def close(self):
        self.httpd.stop.set()
        self.thread.join(5)


@pytest.fixture
def server():
    srv = LoopbackServer()
    yield srv
    srv.close()
    assert not srv.thread.is_alive()


# ------------------------------------------------------------------------- files
def md5(payload):
    return hashlib.md5(payload).hexdigest()


def idx_gz(array):
    """Gzipped IDX (unsigned bytes): magic 0x000008DD, big-endian sizes, the data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">i", s) for s in array.shape)
    return gzip.compress(header + np.asarray(array, dtype=np.uint8).tobytes())


def mnist_payloads(n=30, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels, {"train-images-idx3-ubyte.gz": idx_gz(images),
                            "train-labels-idx1-ubyte.gz": idx_gz(labels)}


CIFAR_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_tar_gz(per_batch=10, seed=0, symlink=None, traversal=False):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    batches = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, payload):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for name in CIFAR_NAMES:
            data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
            batches[name] = (data, labels)
            member = f"cifar-10-batches-py/{name}"
            if name == symlink:
                info = tarfile.TarInfo(member)
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
                continue
            add(member, pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": labels}))
        add("cifar-10-batches-py/batches.meta", pickle.dumps({b"label_names": [b"c"] * 10}))
        add("cifar-10-batches-py/readme.html", b"<html></html>")
        if traversal:
            add("../escaped", b"x")
    return buf.getvalue(), batches


def remote(name, files, subdir=None):
    return RemoteDataset(name, tuple(files), subdir or name, "test set", "generated here")


def rfile(name, payload, urls, members=()):
    return RemoteFile(name, md5(payload), tuple(urls), len(payload), tuple(members))


def no_leftovers(folder, *names):
    """Nothing named ``names`` and no temporary file lies in ``folder``."""
    present = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert not [p for p in present if p in names or p.startswith("tmp")], present


# ------------------------------------------------------------------------- success
def test_fetch_mnist_format_success_verified_once(server, tmp_path, monkeypatch):
    images, labels, payloads = mnist_payloads()
    files = [rfile(n, p, [server.add(f"/m/{n}", p)]) for n, p in payloads.items()]
    ds = remote("tiny-mnist", files)
    paths = fetch.fetch(ds, data_dir=tmp_path, timeout=5)
    assert set(paths) == set(payloads)
    np.testing.assert_array_equal(read_idx(paths["train-images-idx3-ubyte.gz"]), images)
    np.testing.assert_array_equal(read_idx(paths["train-labels-idx1-ubyte.gz"]), labels)
    assert (tmp_path / "tiny-mnist" / fetch.MARKER).is_file()
    hits = len(server.hits)
    assert hits == 2

    # verified once: later loads and fetches neither hash nor download
    def no_hash(path):
        raise AssertionError(f"re-hashed {path}")
    monkeypatch.setattr(fetch, "_md5", no_hash)
    assert fetch.local_files(ds, data_dir=tmp_path) == paths
    assert fetch.fetch(ds, data_dir=tmp_path, timeout=5) == paths
    assert len(server.hits) == hits
    row, = fetch.status(tmp_path, registry={ds.name: ds})
    assert row["cached"] and {f["state"] for f in row["files"]} == {"verified"}
    assert row["cached_bytes"] == row["download_bytes"] == sum(map(len, payloads.values()))


def test_fetch_cifar_archive_is_extracted_after_verification(server, tmp_path):
    payload, batches = cifar_tar_gz()
    members = [f"cifar-10-batches-py/{n}" for n in CIFAR_NAMES + ["batches.meta"]]
    ds = remote("tiny-cifar", [rfile("cifar.tar.gz", payload, [server.add("/c.tgz", payload)],
                                     members)])
    paths = fetch.fetch(ds, data_dir=tmp_path, timeout=5)
    assert set(paths) == set(CIFAR_NAMES) | {"batches.meta"}
    for name in CIFAR_NAMES:
        data, labels = read_cifar_batch(paths[name])
        np.testing.assert_array_equal(data, batches[name][0])
        np.testing.assert_array_equal(labels, batches[name][1])
    folder = tmp_path / "tiny-cifar"
    assert not (folder / "cifar-10-batches-py" / "readme.html").exists()  # only what is used
    assert not [p for p in folder.iterdir() if p.name.startswith(".extract")]
    # the archive may be deleted once extracted: the members stay usable
    (folder / "cifar.tar.gz").unlink()
    assert fetch.local_files(ds, data_dir=tmp_path) == paths


@pytest.mark.parametrize("bad", ["symlink", "traversal"])
def test_unsafe_archive_member_refused(server, tmp_path, bad):
    payload, _ = cifar_tar_gz(symlink="data_batch_2" if bad == "symlink" else None,
                              traversal=bad == "traversal")
    members = [f"cifar-10-batches-py/{n}" for n in CIFAR_NAMES]
    if bad == "traversal":
        members.append("../escaped")
    ds = remote("evil", [rfile("evil.tar.gz", payload, [server.add("/e.tgz", payload)],
                               members)])
    with pytest.raises(ValueError, match="refusing to extract"):
        fetch.fetch(ds, data_dir=tmp_path, timeout=5)
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "evil" / "cifar-10-batches-py").exists()  # all or nothing


# ------------------------------------------------------------------------- failures
def assert_one_line_message(exc, *parts):
    text = str(exc)
    assert "\n" not in text
    for part in parts:
        assert str(part) in text, (part, text)


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    payload = idx_gz(np.zeros((3, 28, 28), np.uint8))
    url = server.add("/bad.gz", payload)
    rf = RemoteFile("train-images-idx3-ubyte.gz", md5(b"something else"), (url,), len(payload))
    ds = remote("bad-md5", [rf])
    with pytest.raises(DataUnavailable) as info:
        fetch.fetch(ds, data_dir=tmp_path, timeout=5)
    folder = tmp_path / "bad-md5"
    assert_one_line_message(info.value, rf.name, url, "checksum mismatch", folder,
                            "ntkdyn data fetch bad-md5", rf.md5)
    no_leftovers(folder, rf.name, fetch.MARKER)
    with pytest.raises(DataUnavailable, match="not found"):
        fetch.local_files(ds, data_dir=tmp_path)


def test_404_falls_through_to_next_mirror(server, tmp_path):
    _, _, payloads = mnist_payloads()
    name, payload = next(iter(payloads.items()))
    urls = [server.url("/missing/" + name), server.add("/ok/" + name, payload)]
    ds = remote("mirrored", [rfile(name, payload, urls)])
    paths = fetch.fetch(ds, data_dir=tmp_path, timeout=5)
    assert paths[name].read_bytes() == payload
    assert server.hits == ["/missing/" + name, "/ok/" + name]


def test_404_everywhere_fails_naming_every_url(server, tmp_path):
    urls = [server.url("/a/f.gz"), server.url("/b/f.gz")]
    ds = remote("gone", [RemoteFile("f.gz", "0" * 32, tuple(urls), 10)])
    with pytest.raises(DataUnavailable) as info:
        fetch.fetch(ds, data_dir=tmp_path, timeout=5)
    assert_one_line_message(info.value, "f.gz", urls[0], urls[1], "HTTP 404",
                            tmp_path / "gone", "by hand")
    no_leftovers(tmp_path / "gone", "f.gz", fetch.MARKER)


def test_connection_cut_mid_transfer(server, tmp_path):
    payload = idx_gz(np.random.default_rng(1).integers(0, 256, (200, 28, 28), dtype=np.uint8))
    url = server.add("/cut.gz", payload, kind="cut")
    ds = remote("cut", [rfile("cut.gz", payload, [url])])
    with pytest.raises(DataUnavailable) as info:
        fetch.fetch(ds, data_dir=tmp_path, timeout=5)
    assert_one_line_message(info.value, "cut.gz", url)
    assert "connection cut" in str(info.value) or "checksum mismatch" in str(info.value)
    no_leftovers(tmp_path / "cut", "cut.gz", fetch.MARKER)


def test_server_that_never_answers_times_out_in_seconds(server, tmp_path):
    url = server.add("/hang.gz", kind="hang")
    ds = remote("hang", [RemoteFile("hang.gz", "0" * 32, (url,), 10)])
    start = time.monotonic()
    with pytest.raises(DataUnavailable) as info:
        fetch.fetch(ds, data_dir=tmp_path, timeout=0.5)
    assert time.monotonic() - start < 5.0
    assert_one_line_message(info.value, "hang.gz", url, "no answer within 0.5 s", "--timeout")
    no_leftovers(tmp_path / "hang", "hang.gz", fetch.MARKER)


def test_wrong_file_replaced_by_a_fetch(server, tmp_path):
    _, _, payloads = mnist_payloads()
    name, payload = next(iter(payloads.items()))
    ds = remote("replace", [rfile(name, payload, [server.add("/" + name, payload)])])
    folder = tmp_path / "replace"
    folder.mkdir()
    (folder / name).write_bytes(payload[:-5])  # a truncated earlier copy
    with pytest.raises(DataUnavailable, match="has md5"):
        fetch.local_files(ds, data_dir=tmp_path)
    assert fetch.fetch(ds, data_dir=tmp_path, timeout=5)[name].read_bytes() == payload


# ------------------------------------------------------------------------- offline
def test_file_put_by_hand_is_verified_once(tmp_path, monkeypatch):
    _, _, payloads = mnist_payloads()
    name, payload = next(iter(payloads.items()))
    ds = remote("by-hand", [rfile(name, payload, ["http://127.0.0.1:9/" + name])])
    (tmp_path / "by-hand").mkdir()
    (tmp_path / "by-hand" / name).write_bytes(payload)
    assert fetch.status(tmp_path, registry={ds.name: ds})[0]["files"][0]["state"] == "unverified"
    paths = fetch.local_files(ds, data_dir=tmp_path)
    monkeypatch.setattr(fetch, "_md5", lambda path: pytest.fail("re-hashed"))
    assert fetch.local_files(ds, data_dir=tmp_path) == paths


def test_missing_files_name_the_fetch_command_and_folder(tmp_path):
    with pytest.raises(DataUnavailable) as info:
        fetch.local_files("mnist", data_dir=tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    assert_one_line_message(info.value, "train-images-idx3-ubyte.gz", "ntkdyn data fetch mnist",
                            tmp_path / "mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert not (tmp_path / "mnist").exists()  # looking creates nothing


def test_unknown_name_and_bad_timeout(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        fetch.fetch("nope", data_dir=tmp_path)
    with pytest.raises(ValueError, match="timeout"):
        fetch.fetch("mnist", data_dir=tmp_path, timeout=0)


def test_data_home_order(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "env"))
    assert fetch.data_home(tmp_path / "arg") == tmp_path / "arg"
    assert (tmp_path / "arg").is_dir()
    assert fetch.data_home() == tmp_path / "env"
    monkeypatch.delenv(fetch.ENV_VAR)
    assert fetch.data_home(create=False) == fetch.pooch.os_cache("ntkdyn")


def test_registry_pins_checksums_and_mirrors():
    assert {"mnist", "fashion-mnist", "cifar10"} <= set(fetch.REMOTE)
    for ds in fetch.REMOTE.values():
        for rf in ds.files:
            assert len(rf.md5) == 32 and int(rf.md5, 16) >= 0
            assert rf.urls and all(u.endswith(rf.name) for u in rf.urls)
    for name in ("mnist", "fashion-mnist"):
        assert all(len(rf.urls) >= 2 for rf in fetch.REMOTE[name].files)
    assert fetch.REMOTE["mnist"].files[0].md5 == "f68b3c2dcbeaaa9fbdd348bbdeb94873"


# ------------------------------------------------------------------------- CLI
def test_cli_data_list_and_fetch(server, tmp_path, monkeypatch, capsys):
    _, _, payloads = mnist_payloads()
    files = [rfile(n, p, [server.add(f"/{n}", p)]) for n, p in payloads.items()]
    monkeypatch.setitem(fetch.REMOTE, "mnist", remote("mnist", files))
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mnist" in out and "cifar10" in out and " no " in out
    assert main(["data", "fetch", "mnist", "--data-dir", str(tmp_path), "--timeout", "5"]) == 0
    assert "2 file(s) verified" in capsys.readouterr().out
    main(["data", "list", "--data-dir", str(tmp_path)])
    line, = [l for l in capsys.readouterr().out.splitlines() if l.startswith("mnist ")]
    assert " yes " in line


def test_cli_fetch_failure_is_one_line_exit_2(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(fetch.REMOTE, "mnist", remote(
        "mnist", [RemoteFile("x.gz", "0" * 32, (server.url("/x.gz"),), 1)]))
    assert main(["data", "fetch", "mnist", "--data-dir", str(tmp_path), "--timeout", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "HTTP 404" in err and "x.gz" in err
    assert main(["data", "fetch", "nope", "--data-dir", str(tmp_path)]) == 2

"""Where synthgate keeps what it computed, and how it writes and fingerprints files.

One place for the cache location, content hashing and atomic writes, so every room
writes the same way: a reader (another process, a later run) never sees half a file
or half a folder, and a run killed mid-write leaves nothing that is later read.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import pickle
import shutil
import stat
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CACHE_ENV = "SYNTHGATE_CACHE"
_BLOCK = 1 << 20
_PACKAGE = Path(__file__).resolve().parent
T = TypeVar("T")


def default_cache_dir() -> Path:
    """``$SYNTHGATE_CACHE``, else ``$XDG_CACHE_HOME/synthgate``, else ``~/.cache/synthgate``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "synthgate"


def unusable_cache(cache_dir: Path) -> str:
    """Why ``cache_dir`` cannot hold the cache (not a folder, not writable), or '' when it can.

    Checked when a run opens, so a bad cache is one line before any work, not an error after training.
    """
    try:
        if cache_dir.exists() and not cache_dir.is_dir():
            return f"{cache_dir}: the synthgate cache must be a folder, and this is a file"
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache_dir):
            pass
    except OSError as error:
        return f"{cache_dir}: the synthgate cache cannot be written ({error.strerror or error})"
    return ""


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, read in blocks (images, weights, configs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(digests) -> str:
    """sha256 over a set of content hashes, order-free: the identity of a set of images."""
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def atomic_write(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path | str, value) -> None:
    """Atomically write ``value`` as indented UTF-8 JSON (NaN refused: JSON has none)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(path, text.encode("utf-8"))


def build_once(target: Path, build: Callable[[Path], None], stamp: str) -> Path:
    """Build the folder ``target`` once: ``build(staging)`` fills a sibling, which is renamed into place.

    A ``.complete`` file (holding ``stamp``) marks a finished build; later calls return
    at once, and a concurrent caller waits on the lock and then finds the folder built.
    """
    if (target / ".complete").exists():
        return target
    with exclusive(target.parent / f".{target.name}.lock"):
        if (target / ".complete").exists():  # another process built it while this one waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            build(staging)
            (staging / ".complete").write_text(stamp + "\n")
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


@contextlib.contextmanager
def exclusive(lock_file: Path):
    """Hold an exclusive lock on ``lock_file``: of parallel runs (``pytest -n``, two gates at once) one builds, the
    others wait and then find it built. The lock goes with the process, so a killed builder never blocks the next."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.cache
def code_version() -> str:
    """sha256 over synthgate's own files (code, templates, tables): a result another version computed is never read."""
    digest = hashlib.sha256()
    for path in sorted(p for p in _PACKAGE.rglob("*") if p.is_file() and p.suffix in (".py", ".toml", ".j2", ".json")):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def result_key(*parts: str) -> str:
    """One key from the content hashes and settings (as text) a result depends on, and this code's version."""
    return sha256_bytes("\0".join((code_version(), *parts)).encode("utf-8"))


def cached_result(cache_dir: Path, kind: str, key: str, compute: Callable[[], T]) -> T:
    """``compute()``, or what it returned before for the same ``key`` (see :func:`result_key`).

    Results are pickled into ``<cache>/results/<kind>/``: the cache is the user's own folder,
    trusted as the environment is (never point ``SYNTHGATE_CACHE`` at a folder others write).
    An entry that cannot be read is removed and computed again; writes are atomic, so a run
    killed mid-write leaves no entry. Exceptions are never cached.
    """
    path = Path(cache_dir) / "results" / kind / f"{key}.pkl"
    found = _read_result(path)
    if found is not _MISSING:
        return found
    with exclusive(path.with_suffix(".lock")):
        found = _read_result(path)  # computed by another process while this one waited
        if found is not _MISSING:
            return found
        value = compute()
        atomic_write(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return value


@contextlib.contextmanager
def cached_table(cache_dir: Path, kind: str, key: str):
    """A dict kept on disk between runs under ``key``: yielded to fill, written back (atomically) if it grew.

    For results computed piece by piece (one entry per file content hash), so that a
    changed file recomputes only its own entry. Same trust and damage rules as
    :func:`cached_result`.
    """
    path = Path(cache_dir) / "results" / kind / f"{key}.pkl"
    found = _read_result(path)
    table = found if isinstance(found, dict) else {}
    size = len(table)
    yield table
    if len(table) != size:
        with exclusive(path.with_suffix(".lock")):
            atomic_write(path, pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL))


_MISSING = object()


def _read_result(path: Path):
    if not path.is_file():
        return _MISSING
    try:
        return pickle.loads(path.read_bytes())
    except Exception as error:  # noqa: BLE001 - any damage means: compute again
        warnings.warn(f"{path}: damaged result cache entry ({error}); removed, computed again", stacklevel=3)
        path.unlink(missing_ok=True)
        return _MISSING


SPECIAL_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """'a regular file', 'a FIFO (named pipe)', ... for an ``st_mode``."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((word for test, word in SPECIAL_KINDS if test(mode)), "not a regular file")

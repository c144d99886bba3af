"""Cache files that heal: validated on read, rebuilt with a one-line notice, written atomically under a lock.

Every cache tt_specdec keeps ($TT_SPECDEC_CACHE, default ~/.cache/tt_specdec) goes through here: the
SmolLM2 weights and tokenizer (models/gguf.py, models/hf_tokenizer.py), the cost models
(speculative/measure.py) and the emulator's compiled kernels (runtime/emu.py).

- A file that does not validate (truncated, garbage, empty, the wrong type, a directory, a valid file
  of another kind or version) is removed and rebuilt; stderr gets one line naming it (`notice`).
- Writes go to a temporary file in the same folder, then os.replace: a concurrent reader sees the old
  file or the new one, never half of one. The temporary file is removed on any exit (an exception,
  KeyboardInterrupt).
- Read-modify-write (the cost table, shared by processes) holds an fcntl lock on `<file>.lock`, so two
  processes adding entries at once keep both.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Callable, Iterator


def root() -> pathlib.Path:
    """$TT_SPECDEC_CACHE, else ~/.cache/tt_specdec."""
    return pathlib.Path(os.environ.get("TT_SPECDEC_CACHE") or pathlib.Path.home() / ".cache" / "tt_specdec")


class Invalid(Exception):
    """A cache file that does not validate; the message says why."""


def notice(path: pathlib.Path, why: str) -> None:
    """The one line a user sees when a cache file is rebuilt."""
    print(f"[tt_specdec] cache file {path} is invalid ({why}): rebuilding it", file=sys.stderr, flush=True)


def discard(path: pathlib.Path) -> None:
    """Remove whatever sits at `path` (a file, a link, a directory); gone already is fine."""
    path = pathlib.Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def regular_file(path: pathlib.Path) -> None:
    """Raises Invalid unless `path` is a non-empty regular file (a directory or an empty file is not)."""
    if path.is_dir():
        raise Invalid("a directory, expected a file")
    if not path.is_file():
        raise Invalid("not a regular file")
    if path.stat().st_size == 0:
        raise Invalid("empty")


@contextlib.contextmanager
def locked(path: pathlib.Path) -> Iterator[None]:
    """An exclusive fcntl lock on `<path>.lock` (released when the block ends or the process dies)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def atomic_write(path: pathlib.Path, write: Callable[[pathlib.Path], None]) -> None:
    """`write(tmp)` fills a temporary file beside `path`, which then replaces `path` in one step.
    The temporary file is removed whatever happens (an exception, KeyboardInterrupt)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = pathlib.Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a cache file gets the usual mode
        write(tmp)
        if path.is_dir() and not path.is_symlink():  # os.replace cannot replace a directory
            discard(path)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: pathlib.Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def stale_temporaries(folder: pathlib.Path, pattern: str = ".*.tmp", older_than_s: float = 3600.0) -> None:
    """Remove the temporary files (or build folders) matching `pattern` that a killed process (SIGKILL: no
    cleanup ran) left in `folder` more than `older_than_s` ago (a younger one may be another process's)."""
    import time

    if not folder.is_dir():
        return
    now = time.time()
    for p in folder.glob(pattern):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > older_than_s:
                discard(p)


def read_json(path: pathlib.Path, kind: str, version: int) -> dict | None:
    """The "data" of a JSON cache file written by write_json with the same kind and version; None when
    there is no file; Invalid (naming why) when there is one that does not validate."""
    path = pathlib.Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    regular_file(path)
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Invalid(f"not JSON: {type(e).__name__}") from None
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        got = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise Invalid(f"kind {got!r}, expected {kind!r}")
    if doc.get("version") != version:
        raise Invalid(f"version {doc.get('version')!r}, expected {version}")
    if not isinstance(doc.get("data"), dict):
        raise Invalid("no 'data' object")
    return doc["data"]


def write_json(path: pathlib.Path, kind: str, version: int, data: dict) -> None:
    write_text(path, json.dumps({"kind": kind, "version": version, "data": data}, indent=1))


def file_digest(path: pathlib.Path) -> dict:
    """{"size", "sha256"} of a whole file (what a derived cache records of its source)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return {"size": pathlib.Path(path).stat().st_size, "sha256": h.hexdigest()}

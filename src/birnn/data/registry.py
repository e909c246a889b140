"""Datasets by path or by name, resolved under ``$BIRNN_DATA`` (default ``~/.cache/birnn``).

A name with a public URL is downloaded when missing and its checksum
verified; a file whose checksum does not match is refused, never used.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Remote:
    filename: str
    url: str
    sha1: str


NAMED = {
    # H. G. Wells, The Time Machine: the file d2l downloads and checks (DATA_HUB['time_machine']).
    "timemachine": Remote(
        "timemachine.txt",
        "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt",
        "090b5e7e70c295757f55df93cb0a180b9691891a",
    ),
}


def data_home() -> Path:
    """``$BIRNN_DATA`` or ``~/.cache/birnn``."""
    return Path(os.environ.get("BIRNN_DATA", Path.home() / ".cache" / "birnn"))


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name_or_path: str | Path, download: bool = True) -> Path:
    """An existing file path, or a known name (``timemachine``) under ``data_home()``.

    Names are downloaded only when missing; the SHA-1 is checked every time.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    if name not in NAMED:
        raise FileNotFoundError(f"{name}: no such file, and not a known dataset name ({', '.join(sorted(NAMED))})")
    remote = NAMED[name]
    target = data_home() / remote.filename
    if not target.is_file():
        if not download:
            raise FileNotFoundError(f"{target}: missing (dataset {name!r}; download disabled)")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        try:
            urllib.request.urlretrieve(remote.url, partial)
        except OSError as exc:
            raise FileNotFoundError(
                f"{name}: not in {target.parent} and the download from {remote.url} failed ({exc})"
            ) from None
        partial.replace(target)
    found = sha1_of(target)
    if found != remote.sha1:
        raise ValueError(f"{target}: SHA-1 {found} does not match the expected {remote.sha1} for {name!r}; delete it")
    return target

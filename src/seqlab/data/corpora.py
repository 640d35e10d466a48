"""Named corpora: where each file comes from, its sha256, and how we get a verified copy.

Lookup order for a file ``<corpus>/<name>``:

1. ``$SEQLAB_DATA/<corpus>/<name>`` (a folder you manage, e.g. CI's pre-fetched copies),
2. the cache, ``$SEQLAB_CACHE`` or ``~/.cache/seqlab``, ``<corpus>/<name>``,
3. a download from the canonical URL into the cache.

A file is used only when its sha256 matches the registry. A download goes to a temporary
file in the cache folder, is verified, and only then renamed into place (``os.replace`` is
atomic), so a crash never leaves a half-written file under the real name. A wrong hash is
deleted and downloaded once more; if it is still wrong we stop with a clear error. Offline
with no copy, the error names the file, its URL and the folder to put it in.
"""
from __future__ import annotations

import gzip
import http.client
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str


_GH = "https://raw.githubusercontent.com"
_M30K = f"{_GH}/multi30k/dataset/master/data/task1/raw"

#: corpus name -> file name -> where it comes from and its sha256
CORPORA: dict[str, dict[str, RemoteFile]] = {
    "tinyshakespeare": {
        "input.txt": RemoteFile(
            f"{_GH}/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        ),
    },
    "multi30k": {
        "train.de.gz": RemoteFile(f"{_M30K}/train.de.gz", "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6"),
        "train.en.gz": RemoteFile(f"{_M30K}/train.en.gz", "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f"),
        "val.de.gz": RemoteFile(f"{_M30K}/val.de.gz", "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a"),
        "val.en.gz": RemoteFile(f"{_M30K}/val.en.gz", "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28"),
        "test_2016_flickr.de.gz": RemoteFile(f"{_M30K}/test_2016_flickr.de.gz", "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8"),
        "test_2016_flickr.en.gz": RemoteFile(f"{_M30K}/test_2016_flickr.en.gz", "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9"),
    },
}


class DataError(RuntimeError):
    """A corpus file could not be found, downloaded or verified."""


def cache_dir() -> Path:
    """Where downloads go: ``$SEQLAB_CACHE`` or ``~/.cache/seqlab``."""
    return Path(os.environ.get("SEQLAB_CACHE") or Path.home() / ".cache" / "seqlab")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _lookup(corpus: str, name: str) -> RemoteFile:
    if corpus not in CORPORA:
        raise KeyError(f"unknown corpus {corpus!r}; known: {', '.join(sorted(CORPORA))}")
    if name not in CORPORA[corpus]:
        raise KeyError(f"corpus {corpus!r} has no file {name!r}; it has: {', '.join(CORPORA[corpus])}")
    return CORPORA[corpus][name]


def _download(remote: RemoteFile, target: Path) -> None:
    """Download ``remote`` to a temporary file beside ``target``, verify, rename into place."""
    from tqdm.auto import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=30) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        got = sha256_of(Path(tmp))
        if got != remote.sha256:
            raise DataError(
                f"downloaded {remote.url} but its sha256 is {got}, expected {remote.sha256} "
                "(partial or corrupted transfer)"
            )
        os.replace(tmp, target)  # atomic: the real name only ever holds a verified file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch(corpus: str, name: str) -> Path:
    """Path of a verified local copy of ``corpus/name``, downloading it if needed."""
    remote = _lookup(corpus, name)
    shared = os.environ.get("SEQLAB_DATA")
    if shared:
        candidate = Path(shared) / corpus / name
        if candidate.exists():
            if sha256_of(candidate) == remote.sha256:
                return candidate
            # a folder the user manages: never delete there, fall through to the cache
            print(f"warning: {candidate} has the wrong sha256; ignoring it")

    target = cache_dir() / corpus / name
    if target.exists():
        if sha256_of(target) == remote.sha256:
            return target
        print(f"{target} is corrupted or partial (wrong sha256); deleting and downloading again")
        target.unlink()

    last_error: Exception | None = None
    for _attempt in range(2):  # one retry for a corrupted transfer
        try:
            _download(remote, target)
            return target
        except (DataError, http.client.HTTPException) as err:  # corrupted or cut-off transfer
            last_error = err
        except (urllib.error.URLError, OSError) as err:
            raise DataError(
                f"cannot find {corpus}/{name} and cannot download it ({err}).\n"
                f"  Download {remote.url}\n"
                f"  and put it at {target}\n"
                f"  (or at $SEQLAB_DATA/{corpus}/{name}; sha256 {remote.sha256})."
            ) from err
    raise DataError(f"{corpus}/{name}: two downloads failed verification. Last error: {last_error}")


def load_text(corpus: str = "tinyshakespeare", name: str = "input.txt") -> str:
    """The whole text of a corpus file (gzip files are decompressed)."""
    path = fetch(corpus, name)
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    return path.read_text(encoding="utf-8")


def load_multi30k(split: str = "train") -> tuple[list[str], list[str]]:
    """Multi30k task 1 as (english, german) lists of sentences; split: train | val | test."""
    stem = {"train": "train", "val": "val", "test": "test_2016_flickr"}.get(split)
    if stem is None:
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    en = load_text("multi30k", f"{stem}.en.gz").rstrip("\n").split("\n")
    de = load_text("multi30k", f"{stem}.de.gz").rstrip("\n").split("\n")
    if len(en) != len(de):
        raise DataError(f"multi30k {split}: {len(en)} English but {len(de)} German lines")
    return en, de

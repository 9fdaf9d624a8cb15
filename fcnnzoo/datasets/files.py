"""Locating and reading the files of datasets that live in a user's folder.

Every error names the dataset and the file or folder involved, so that a
user can see which of their files is missing or damaged.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["GZIP_SUFFIX", "find_file", "find_files", "read_file_bytes", "resolve_data_dir"]


GZIP_SUFFIX: Final = ".gz"
# The first two bytes of every gzip stream (RFC 1952).
GZIP_MAGIC: Final = b"\x1f\x8b"


def resolve_data_dir(dataset: str, data_dir: str | Path | None) -> Path:
    """Return ``data_dir`` as a path after checking that it is an existing folder.

    Raises:
        ValueError: if ``data_dir`` is ``None``.
        FileNotFoundError: if the folder does not exist.
        NotADirectoryError: if the path is not a folder.
    """
    if data_dir is None:
        raise ValueError(
            f"Dataset {dataset!r} is read from local files: pass the folder that contains them "
            "as data_dir (--data-dir on the command line)."
        )
    folder = Path(data_dir).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"The data folder {folder} for dataset {dataset!r} does not exist. Check the --data-dir path.")
    if not folder.is_dir():
        raise NotADirectoryError(f"The data folder {folder} for dataset {dataset!r} is not a folder. Pass the folder that contains the files.")
    return folder


def find_file(dataset: str, folder: Path, name: str) -> Path:
    """Return ``folder / name``, or its gzip-compressed twin ``name + ".gz"``.

    The uncompressed file wins when both exist.

    Raises:
        FileNotFoundError: if neither file exists; the message names both.
    """
    for candidate in (folder / name, folder / f"{name}{GZIP_SUFFIX}"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Dataset {dataset!r} needs the file {name} (or {name}{GZIP_SUFFIX}) in {folder}, but neither exists."
    )


def find_files(dataset: str, folder: Path, names: Sequence[str]) -> list[Path]:
    """Return the paths of every file in ``names``, as :func:`find_file` finds them.

    Raises:
        FileNotFoundError: if any file is missing; the message lists all missing names.
    """
    found = []
    missing = []
    for name in names:
        try:
            found.append(find_file(dataset, folder, name))
        except FileNotFoundError:
            missing.append(name)
    if missing:
        raise FileNotFoundError(
            f"Dataset {dataset!r} is missing {len(missing)} of its {len(names)} files in {folder}: "
            f"{', '.join(missing)} (each may also be gzip-compressed with a {GZIP_SUFFIX} suffix)."
        )
    return found


def read_file_bytes(path: Path) -> bytes:
    """Read a whole file, decompressing it when it starts with the gzip magic number.

    Raises:
        ValueError: if a gzip stream is truncated or corrupt.
    """
    data = path.read_bytes()
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"File {path} is not a valid gzip file ({exc}). Download it again or store it uncompressed.") from exc

"""A release's manifest and files: parsing the CSV, resolving one row per image.

The manifest's *content* problems (unknown labels, missing files, paths escaping the
folder) are kept as data for the integrity checks; only an unreadable manifest is an error.
"""

from __future__ import annotations

import csv
import io
import posixpath
from dataclasses import dataclass
from pathlib import Path

from synthgate.config.toml import ConfigError
from synthgate.storage import kind_of

MANIFEST_PATH_COLUMN = "path"
MANIFEST_INFO_COLUMNS = ("patient_id", "prompt", "seed")


@dataclass(frozen=True)
class ManifestRow:
    line: int
    path: str
    labels: dict[str, str]
    patient_id: str | None


@dataclass(frozen=True)
class Manifest:
    """The manifest as written: every row and column kept, valid or not."""

    file: Path
    columns: tuple[str, ...]
    rows: tuple[ManifestRow, ...]

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c != MANIFEST_PATH_COLUMN and c not in MANIFEST_INFO_COLUMNS)


def normalise_path(written: str) -> str:
    """The one identity of a manifest path (``./images//x.png`` is ``images/x.png``), fixed where it is read.

    Every later stage (integrity, every model-based check, leakage) uses this form, so no
    spelling can make a file pass integrity but be left out of another check.
    """
    return posixpath.normpath(written) if written else written


def read_manifest(path: Path) -> Manifest:
    """Parse a manifest CSV; an unreadable file, no header or no ``path`` column is a ConfigError.

    A leading byte-order mark (Excel's "CSV UTF-8") is an encoding marker, not part of the first column's name.
    """
    try:
        kind = kind_of(path.stat().st_mode)  # a folder, or a FIFO that would block the read
        if kind != "a regular file":
            raise ConfigError(path, "", f"is {kind}, not a manifest CSV")
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")  # utf-8-sig, but with true byte offsets
    except FileNotFoundError:
        raise ConfigError(path, "", "manifest file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, "", f"manifest is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise ConfigError(path, "", f"manifest cannot be read ({error.strerror or error})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ConfigError(path, "", "manifest is empty: it needs a header row with a 'path' column")
    header = [column.strip() for column in header]
    if MANIFEST_PATH_COLUMN not in header:
        raise ConfigError(path, "", f"manifest header has no 'path' column (found {header})")
    if len(set(header)) != len(header):
        raise ConfigError(path, "", f"manifest header repeats a column: {header}")
    rows = []
    for line, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(header):
            raise ConfigError(path, f"line {line}", f"has {len(values)} fields, the header has {len(header)}")
        record = dict(zip(header, (v.strip() for v in values)))
        labels = {k: v for k, v in record.items() if k != MANIFEST_PATH_COLUMN and k not in MANIFEST_INFO_COLUMNS}
        rows.append(ManifestRow(line, normalise_path(record[MANIFEST_PATH_COLUMN]), labels, record.get("patient_id") or None))
    return Manifest(file=path, columns=tuple(header), rows=tuple(rows))

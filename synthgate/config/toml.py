"""Strict reading of TOML tables: every error names the file and the key.

Release configs are written by hand; a misspelled key must be reported as such
("unknown key 'tresholds'"), not ignored or turned into a KeyError from deep inside.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A problem in a config file, with the file and key it concerns."""

    def __init__(self, file: Path | str, key: str, problem: str):
        self.file, self.key, self.problem = Path(file), key, problem
        where = f" at '{key}'" if key else ""
        super().__init__(f"{file}{where}: {problem}")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax errors into a ConfigError naming the file."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, "", f"not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, "", f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    except IsADirectoryError:
        raise ConfigError(path, "", "is a folder, not a file") from None
    except OSError as error:
        raise ConfigError(path, "", f"cannot be read ({error.strerror})") from None


def _refuse_non_finite(value: Any, error, where: str = "") -> None:
    """NaN and infinity (which TOML accepts) mean nothing as a threshold or setting: refuse them anywhere.

    ``error(subkey, problem)`` builds the ConfigError; ``subkey`` names the place inside ``value``.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise error(where, f"must be a finite number, got {value!r}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_non_finite(item, error, f"{where}[{index}]")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_non_finite(item, error, f"{where}.{key}" if where else key)


class Table:
    """A view on one TOML table that hands out typed values and remembers which keys were read.

    Call :meth:`finish` once every known key was taken: any key left over is unknown
    and reported with the closest known spelling.
    """

    def __init__(self, data: dict[str, Any], file: Path, prefix: str = ""):
        if not isinstance(data, dict):
            raise ConfigError(file, prefix, f"expected a table, got {type(data).__name__}")
        self.data, self.file, self.prefix = data, Path(file), prefix
        self._known: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self.key_path(key), problem)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, choices=None) -> Any:
        """The value at ``key``, checked against ``kind`` (and ``choices``); required without default."""
        self._known.add(key)
        if key not in self.data:
            if default is ...:
                close = difflib.get_close_matches(key, [k for k in self.data if k not in self._known], n=1)
                hint = f" ('{close[0]}' is not a known key: misspelled?)" if close else ""
                raise self.error(key, f"required key is missing{hint}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(key, f"expected {names}, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {sorted(choices)}")
        _refuse_non_finite(value, lambda sub, problem: self.error(f"{key}.{sub}" if sub and sub[0] != "[" else key + sub,
                                                                   problem))
        return value

    def get_list(self, key: str, item_kind: type | tuple[type, ...], default: Any = ...) -> list:
        value = self.get(key, list, default)
        kinds = item_kind if isinstance(item_kind, tuple) else (item_kind,)
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, kinds):
                names = " or ".join(k.__name__ for k in kinds)
                raise self.error(f"{key}[{index}]", f"expected {names}, got {item!r}")
        return value

    def table(self, key: str, default: Any = ...) -> Table | None:
        value = self.get(key, dict, default)
        return None if value is None else Table(value, self.file, self.key_path(key))

    def path(self, key: str, base: Path, default: Any = ...) -> Path | None:
        value = self.get(key, str, default)
        return None if value is None else (base / value).resolve()

    def finish_with(self, known) -> None:
        """Like :meth:`finish`, for tables whose keys are names from ``known`` (suggested on a typo)."""
        self._known.update(known)
        self.finish()

    def finish(self) -> None:
        unknown = [key for key in self.data if key not in self._known]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, sorted(self._known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(self._known))})"
            raise self.error(key, f"unknown key{hint}")

"""Reading a catalogue document: the JSON file itself (no duplicate keys, no NaN) and a reader that checks types,
keys and references, collecting every problem with its place in the file."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config.names import Name
from consent.catalogue.spec import CatalogueError

LANGUAGES = ("de", "en")
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def catalogue_load_file(path: str) -> object:
    """The parsed JSON of a catalogue file, or CatalogueError naming the file and what is wrong with it."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise CatalogueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CatalogueError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path}: not UTF-8 text (at byte offset {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    except DuplicateKeyError as exc:
        raise CatalogueError(f"{path}: key '{exc.key}' appears twice in one object") from None
    except ValueError as exc:
        raise CatalogueError(f"{path}: not valid JSON ({exc})") from None


class DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would silently keep the last of two "notice" keys: a catalogue must say one thing.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def at(place: str, key: object) -> str:
    name = str(key)
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return f"{place}.{name}" if place else name
    return f"{place}[{json.dumps(name, ensure_ascii=False)}]"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def show(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class DocumentReader:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, place: str, message: str) -> None:
        self.problems.append(f"{place}: {message}")

    def mapping(
        self, value: object, place: str, required: Sequence[str], optional: Sequence[str] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(place, "must be an object")
            return None
        known = (*required, *optional)
        for key in value:
            if key not in known:
                self.problem(at(place, key), f"unknown key (known keys: {', '.join(known)})")
        for key in required:
            if key not in value:
                self.problem(at(place, key), "is required")
        return value

    def items(self, obj: dict[str, Any], key: str, place: str) -> list[Any] | None:
        if key not in obj:
            return None
        if not isinstance(obj[key], list):
            self.problem(at(place, key), "must be a list")
            return None
        return obj[key]

    def key(self, obj: dict[str, Any], place: str) -> str | None:
        if "key" not in obj:
            return None
        value = obj["key"]
        if not isinstance(value, str) or not KEY.fullmatch(value):
            self.problem(
                at(place, "key"),
                f"{show(value)} is not a key: use lower-case letters, digits, '-' and '_' (at most 64 characters)",
            )
            return None
        return value

    def name(self, obj: dict[str, Any], key: str, place: str, *, max_length: int | None = 200) -> Name | None:
        """A name: one string, or an object of texts per language (each of LANGUAGES, nothing else)."""
        if key not in obj or not isinstance(obj[key], dict):
            return self.text(obj, key, place, max_length=max_length)
        texts = self.mapping(obj[key], at(place, key), LANGUAGES)
        if texts is None:
            return None
        found = {language: self.text(texts, language, at(place, key), max_length=max_length) for language in texts}
        if len(texts) != len(LANGUAGES) or any(text is None for text in found.values()):
            return None
        return {language: text for language, text in found.items() if text is not None}

    def text(self, obj: dict[str, Any], key: str, place: str, *, max_length: int | None = 200) -> str | None:
        if key not in obj:
            return None
        value = obj[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(at(place, key), "must be a non-empty string")
            return None
        if max_length is not None and len(value) > max_length:
            self.problem(at(place, key), f"must be at most {max_length} characters")
            return None
        if "\x00" in value or not _encodable(value):
            # PostgreSQL stores neither a NUL character nor a lone surrogate in text or jsonb.
            self.problem(at(place, key), "must not contain NUL characters or unpaired surrogates")
            return None
        return value

    def flag(self, obj: dict[str, Any], key: str, place: str) -> bool | None:
        if key not in obj:
            return None
        if not isinstance(obj[key], bool):
            self.problem(at(place, key), "must be true or false")
            return None
        return bool(obj[key])

    def count(self, obj: dict[str, Any], key: str, place: str, *, maximum: int) -> int | None:
        if key not in obj:
            return None
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            self.problem(at(place, key), f"must be a whole number from 1 to {maximum}")
            return None
        return value

    def choice(self, obj: dict[str, Any], key: str, place: str, choices: Sequence[str]) -> str | None:
        if key not in obj:
            return None
        value = obj[key]
        if not isinstance(value, str) or value not in choices:
            self.problem(at(place, key), f"{show(value)} is not one of {', '.join(choices)}")
            return None
        return value

    def references(
        self, obj: dict[str, Any], key: str, place: str, declared: Sequence[str] | dict[str, Any] | None, what: str
    ) -> tuple[str, ...] | None:
        """A list of keys, each declared elsewhere in the file (declared None: the declarations themselves are
        broken, so only the shape is checked), none twice."""
        items = self.items(obj, key, place)
        if items is None:
            return None
        seen: list[str] = []
        for index, item in enumerate(items):
            where = f"{at(place, key)}[{index}]"
            if not isinstance(item, str):
                self.problem(where, f"must be the key of a {what}")
            elif item in seen:
                self.problem(where, f"'{item}' is listed twice")
            elif declared is not None and item not in declared:
                self.problem(where, f"'{item}' is not a declared {what}")
            else:
                seen.append(item)
        return tuple(seen)

    def unique(self, key: str | None, place: str, first_places: dict[str, str]) -> str | None:
        if key is None:
            return None
        if key in first_places:
            self.problem(at(place, "key"), f"'{key}' is declared twice (first at {first_places[key]})")
            return None
        first_places[key] = place
        return key

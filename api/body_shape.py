"""What no request body may hold, whatever its route: too much depth, NUL, duplicate keys.

msgspec decodes a body the way the handlers will see it; it keeps the last of duplicate keys,
nests as deep as the interpreter's recursion allows and passes U+0000 through. Each of those is
refused here, naming the field (api.md 1.3):

- a duplicate key: parsers disagree on which one wins, so a body that a proxy or a signature
  check reads one way could be applied another way;
- nesting deeper than :data:`MAX_DEPTH`: every later step (validation, the handler, the
  idempotency fingerprint, jsonb) recurses, and must never hit a limit of its own (a body
  nested 940 levels once passed the decoder and failed further on with a 500);
- U+0000 in a string or key: PostgreSQL ``text`` and ``jsonb`` cannot store it.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ["MAX_DEPTH", "NUL_MESSAGE", "shape_problems"]

MAX_DEPTH: Final = 64
NUL_MESSAGE: Final = "must not contain the NUL character"
_DEPTH_MESSAGE: Final = f"must not nest deeper than {MAX_DEPTH} levels"


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in order, duplicates kept."""


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def shape_problems(body: bytes, value: Any) -> list[tuple[str, str]]:
    """``(field, message)`` for each too-deep value, NUL and duplicate key of ``body``.

    ``value`` is ``body`` as msgspec decoded it (so ``body`` is valid UTF-8 JSON without NaN).
    Depth and NUL are checked on it without recursion; duplicate keys, which only the raw text
    shows, are then looked for in a parse that the depth limit keeps shallow.
    """
    problems = _walk(value, lambda item: item.items() if isinstance(item, dict) else None)
    if problems:
        return problems
    tree = json.loads(body, object_pairs_hook=_Pairs)
    return _walk(tree, lambda item: item if isinstance(item, _Pairs) else None)


def _walk(
    tree: Any, pairs_of: Callable[[Any], Iterable[tuple[str, Any]] | None]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    pending: list[tuple[Any, str, int]] = [(tree, "", 0)]  # explicit stack: no recursion
    while pending:
        item, where, depth = pending.pop()
        pairs = pairs_of(item)
        if depth > MAX_DEPTH:
            problems.append((where or "body", _DEPTH_MESSAGE))
        elif isinstance(item, str):
            if "\x00" in item:
                problems.append((where or "body", NUL_MESSAGE))
        elif pairs is not None:
            seen: set[str] = set()
            for name, member in pairs:
                here = _join(where, name)
                if "\x00" in name:
                    problems.append((here, NUL_MESSAGE))
                elif name in seen:
                    problems.append((here, "duplicate key"))
                seen.add(name)
                pending.append((member, here, depth + 1))
        elif isinstance(item, list):
            pending.extend((member, f"{where}[{i}]", depth + 1) for i, member in enumerate(item))
    return problems

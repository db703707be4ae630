"""The JSON Schemas bundled with the SDK (a byte-identical copy of ``events/schema/``).

``sdk/python/sync-schemas`` refreshes the copy; the test suite fails while it differs from the
contract's.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, Tuple

_PACKAGE = "authtrail.schema"
_SUFFIX = ".schema.json"


@lru_cache(maxsize=None)
def event_types() -> Tuple[str, ...]:
    """Every event type the bundled schemas describe, sorted."""
    names = (entry.name for entry in resources.files(_PACKAGE).iterdir())
    return tuple(sorted(n[: -len(_SUFFIX)] for n in names if n.endswith(_SUFFIX)))


@lru_cache(maxsize=None)
def schema_for(event_type: str) -> Dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``event_type``; :class:`KeyError` for an unknown type.

    The returned dict is shared: do not modify it.
    """
    if event_type not in event_types():
        raise KeyError(event_type)
    text = resources.files(_PACKAGE).joinpath(event_type + _SUFFIX).read_text(encoding="utf-8")
    schema: Dict[str, Any] = json.loads(text)
    return schema

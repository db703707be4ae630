"""The schemas bundled in the package are the contract's, byte for byte."""

from __future__ import annotations

from importlib import resources

import pytest

from authtrail.schemas import event_types, schema_for
from conftest import SCHEMAS


def _bundled(name: str) -> bytes:
    return resources.files("authtrail.schema").joinpath(name).read_bytes()


@pytest.mark.skipif(not SCHEMAS.is_dir(), reason="events/schema not found (set AUTHTRAIL_REPO)")
def test_bundled_schemas_are_byte_identical_to_the_contract() -> None:
    contract = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    bundled = sorted(t + ".schema.json" for t in event_types())
    assert bundled == contract, "run sdk/python/sync-schemas"
    for name in contract:
        assert _bundled(name) == (SCHEMAS / name).read_bytes(), f"{name} differs: run sdk/python/sync-schemas"


def test_every_type_has_a_draft_2020_12_schema() -> None:
    assert "login.succeeded" in event_types()
    for event_type in event_types():
        schema = schema_for(event_type)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["type"] == {"const": event_type}

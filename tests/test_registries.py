"""Each registry of backends and models is the list the schema accepts: adding one is a module,
one registry line and its name in the schema's enum, and this test names what is missing."""

from __future__ import annotations

import pytest

from vad_pipeline import config as C
from vad_pipeline import detect, flow, models


@pytest.mark.parametrize("section, key, registry, resolve", [
    ("detect", "backend", detect.BACKENDS, detect.backend_fn),
    ("flow", "backend", flow.BACKENDS, flow.factory),
    ("model", "name", models.MODELS, models.MODELS.get),
])
def test_registry_is_the_schema_enum(section, key, registry, resolve):
    enum = C.load_schema()["$defs"][section]["properties"][key]["enum"]
    assert sorted(enum) == sorted(registry), f"{section}.{key}: schema enum vs registry"
    for name in registry:
        assert callable(resolve(name))

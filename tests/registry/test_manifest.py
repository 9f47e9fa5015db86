"""manifest.json: every field is type-checked, and a broken one is named with its field."""

from __future__ import annotations

from typing import Any

import pytest

from vemonitor.api import IntegrationError
from vemonitor.registry import Manifest, Registry

GOOD = {"domain": "jsonl", "name": "JSON Lines", "version": "0.1.0", "provides": ["output"]}


def test_a_good_manifest_keeps_its_fields_and_defaults() -> None:
    manifest = Manifest.from_dict({**GOOD, "aliases": ["lines"]}, "package x")
    assert (manifest.domain, manifest.version, manifest.provides) == ("jsonl", "0.1.0",
                                                                      ("output",))
    assert manifest.aliases == ("lines",) and manifest.requirements == ()
    assert manifest.iot_class == "local_polling"


@pytest.mark.parametrize(("change", "why"), [
    ({"version": None}, "missing 'version'"),
    ({"version": 1.2}, "'version' must be a non-empty string, got 1.2"),
    ({"name": ""}, "'name' must be a non-empty string, got ''"),
    ({"domain": "Json-Lines"}, "'domain' 'Json-Lines' must be lower case letters, digits and _"),
    ({"provides": "output"}, "'provides' must be a list of strings, got 'output'"),
    ({"provides": ["output", "printer"]}, "unknown 'provides' ['printer']"),
    ({"aliases": [1]}, "'aliases' must be a list of strings, got [1]"),
    ({"requirements": "requests"}, "'requirements' must be a list of strings, got 'requests'"),
    ({"iot_class": ["local_push"]}, "'iot_class' must be a non-empty string, got ['local_push']"),
])
def test_a_wrong_field_is_named(change: dict[str, Any], why: str) -> None:
    data = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(IntegrationError) as err:
        Manifest.from_dict(data, "package x (vm_x)")
    assert str(err.value).startswith(f"package x (vm_x): invalid manifest.json ({why}")


def test_a_manifest_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(IntegrationError, match="it must hold a JSON object"):
        Manifest.from_dict(["output"], "package x")


def test_broken_manifests_are_recorded_under_the_name_the_user_declared() -> None:
    registry = Registry()
    registry._add_manifest("{not json", "package p (vm_a)", "vm_a", "a")
    registry._add_manifest('{"domain": "b"}', "package p (vm_b)", "vm_b", "b")
    assert registry.failed["a"].startswith("package p (vm_a): manifest.json is not JSON")
    assert registry.failed["b"] == "package p (vm_b): invalid manifest.json (missing 'provides')"
    assert registry.manifests == {}

"""One schema read by both sides: the example apps (Kotlin, Swift) and edgedistill (Python).

- manifest.schema.json is what Manifest generates (regenerate: python -m edgedistill.schemas);
- every manifest key the Kotlin and Swift examples read exists in that schema, and both read the same keys;
- every outputs.npz key a writer writes (Kotlin, Swift, the fake app) or a reader reads (validate, bench --app)
  is in device-outputs.schema.json. (The Kotlin writer's real files are checked in test_examples_kotlin.py.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgedistill.schemas import DEVICE_OUTPUTS_SCHEMA, MANIFEST_SCHEMA, load, manifest_schema

REPO = Path(__file__).resolve().parents[1]
KOTLIN = REPO / "examples/android/core/src/main/kotlin/org/edgedistill/core"
SWIFT = REPO / "examples/ios/Sources/EdgeBundleCore"


def _keys(schema: dict) -> set[str]:
    """Every property name anywhere in a schema (top level, $defs, nested)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            found.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(schema)
    return found


def kotlin_manifest_keys() -> set[str]:
    return set(re.findall(r'\.(?:required|optional)\("([a-z_0-9]+)"\)', (KOTLIN / "Manifest.kt").read_text()))


def swift_manifest_keys() -> set[str]:
    return set(re.findall(r'\b(?:required|optional|string|int)\(\w+, "([a-z_0-9]+)"\)', (SWIFT / "Manifest.swift").read_text()))


def test_committed_manifest_schema_is_generated_from_the_model():
    committed = load(MANIFEST_SCHEMA)
    assert committed == manifest_schema(), "manifest.schema.json is stale: run python -m edgedistill.schemas"


def test_every_manifest_key_the_examples_read_is_in_the_schema():
    kotlin, swift = kotlin_manifest_keys(), swift_manifest_keys()
    assert {"format", "model_file", "sha256", "inputs", "shape", "dtype", "num_classes", "labels", "count",
            "vocab_file", "do_lower_case", "max_length"} <= kotlin, kotlin
    assert kotlin == swift, f"the Android and iOS examples read different keys: {kotlin ^ swift}"
    missing = kotlin - _keys(load(MANIFEST_SCHEMA))
    assert not missing, f"the examples read manifest keys the schema does not have: {missing}"


def test_the_schema_accepts_what_the_exporter_writes_and_refuses_a_bad_wordpiece():
    import jsonschema

    from edgedistill.bundle import Manifest, TensorSpec

    schema = load(MANIFEST_SCHEMA)
    manifest = Manifest(format="executorch", backend="xnnpack", quantization="fp32", model_file="model.pte", sha256="0" * 64,
                        size_bytes=1, inputs=[TensorSpec(name="x", shape=["batch", 64], dtype="float32")],
                        outputs=[TensorSpec(name="logits", shape=["batch", 10], dtype="float32")], num_classes=10,
                        golden={"file": "golden/golden.npz", "count": 64},
                        preprocessing={"layout": "8x8", "scale": 0.0625, "offset": 0.0})
    document = json.loads(manifest.model_dump_json())
    jsonschema.validate(document, schema)
    document["preprocessing"] = {"kind": "wordpiece", "vocab_file": "tokenizer/vocab.txt", "do_lower_case": "yes",
                                 "max_length": 32}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
    document["preprocessing"]["do_lower_case"] = True
    jsonschema.validate(document, schema)


def test_every_outputs_key_written_or_read_is_in_the_device_outputs_schema():
    from edgedistill.device.app import TIMING_KEYS

    allowed = set(load(DEVICE_OUTPUTS_SCHEMA)["properties"])
    kotlin = set(re.findall(r'out\["([a-z_0-9]+)"\]', (KOTLIN / "DeviceOutputs.kt").read_text()))
    swift = set(re.findall(r'out\.append\(\("([a-z_0-9]+)"', (SWIFT / "DeviceOutputs.swift").read_text()))
    fake = set(re.findall(r'"([a-z_0-9]+)": (?:np\.|logits)', (REPO / "tests/fake_adb/bin/am").read_text()))
    reader = set(re.findall(r'"(logits|probs|model_sha256|device)"',
                            (REPO / "edgedistill/validation/device_outputs.py").read_text()))
    assert {"logits", "model_sha256", "latency_ms"} <= kotlin and kotlin == swift == fake, (kotlin, swift, fake)
    for who, keys in (("Kotlin writer", kotlin), ("bench --app", set(TIMING_KEYS)), ("validator", reader)):
        assert keys <= allowed, f"{who} uses keys outside device-outputs.schema.json: {keys - allowed}"


def test_the_exporters_wordpiece_keys_are_the_schemas_and_cover_what_the_apps_read():
    text = pytest.importorskip("edgedistill.text_preprocessing", reason="the exporter's tokenizer contract is not merged")
    wordpiece = set(load(MANIFEST_SCHEMA)["$defs"]["WordPiecePreprocessing"]["properties"])
    assert set(text.APP_KEYS) == wordpiece
    app_reads = {k for k in kotlin_manifest_keys() if k in wordpiece}
    assert app_reads <= set(text.APP_KEYS) and {"vocab_file", "do_lower_case", "max_length"} <= app_reads

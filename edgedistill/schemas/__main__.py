"""``python -m edgedistill.schemas``: regenerate manifest.schema.json from the Manifest model."""

from edgedistill.schemas import write_manifest_schema

print(write_manifest_schema())

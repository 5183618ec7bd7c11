"""Data sources beyond ``.npz``: image folders, JSON Lines text, and Python dataset factories.

Each turns its source into an in-memory ``edgedistill.data.Dataset`` and records how the inputs
were made in ``Dataset.preprocessing`` (it goes into every bundle's manifest, so an app can
prepare inputs the same way). ``edgedistill.data.load_dataset`` picks the source.
"""

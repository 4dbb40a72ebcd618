"""Test helpers for every layer, importable by any test suite (datasette-style): tiny models,
synthetic and awkward images, curated workspaces, labeling rows, AppTest and browser helpers.
Needs the dev dependencies (pytest, playwright for `browser`); nothing in the package imports it."""

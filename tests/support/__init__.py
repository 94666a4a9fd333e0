"""Helpers that several test modules share (no tests here): builders of decide() inputs,
hypothesis strategies, a hand-made metrics view, the exporters' files, the daemon harness,
the agent's fixture trees. Imported as `tests.support.NAME` (pytest's pythonpath is the
repository root)."""

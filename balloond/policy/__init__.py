"""Policies: immutable, validated once at load (see `loader`), matched per domain."""

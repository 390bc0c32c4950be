"""Benchmark project (a package only so that type checkers can tell the handlers modules apart)."""

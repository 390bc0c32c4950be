"""Mutation testing: plant one realistic mistake at a time and check that a test catches it.

``python -m tools.mutate --help``; the mutants are listed in ``mutants.py``, and
docs/testing.md ("Mutation testing") explains how to run and extend them.
"""

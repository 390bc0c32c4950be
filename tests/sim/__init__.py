"""Seeded fault-injection simulation of whole ``indexer run`` processes (docs/simulation.md)."""

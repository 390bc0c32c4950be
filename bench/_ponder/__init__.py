"""The side-by-side benchmark against Ponder (``bench/ponder.py``): its node, projects and runs."""

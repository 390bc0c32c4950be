"""The pieces of ``fields.py``: the chain, the runs, the report."""

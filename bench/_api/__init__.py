"""``bench/api.py``'s pieces: the data, the server, the load generator, the indexing runs, the report."""

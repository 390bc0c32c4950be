"""The pieces of the benchmark suite; ``bench/run.py`` is its command, ``bench/report.py`` redraws."""

"""The pieces of the reorg rollback benchmark; ``bench/rollback.py`` is its command."""

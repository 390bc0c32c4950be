"""The pieces of the write-path benchmark; ``bench/write_path.py`` is its command."""

# trio-asyncio must be imported before psycopg: it monkeypatches
# asyncio.get_running_loop(), and psycopg.waiting binds that name at import
# time ("from asyncio import get_running_loop"); imported the other way round,
# AsyncConnection.connect() fails with "RuntimeError: no running event loop".
# Imported here, it comes first for every module of this package.
import trio_asyncio  # type: ignore[import-untyped, unused-ignore]  # noqa: F401

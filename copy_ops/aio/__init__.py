"""How the orchestration runs on the worker's loop: bounded concurrency, retried races (asyncio, no I/O)."""

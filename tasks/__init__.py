"""Prefect tasks: thin, coarse wrappers that give the core phases retries and logging."""

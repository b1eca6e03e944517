"""Prefect flows: one file per phase of the yearly cycle, and the daily tick."""

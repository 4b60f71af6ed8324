"""Benchmarks for the coalition gateway; run each module with ``python -m bench.<name>``."""

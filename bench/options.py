"""A run's parameters, as parsed from the command line by bench/earn.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    members: int  # per partner
    requests: int  # timed earns per scenario
    warmup: int  # untimed earns before them
    concurrency: int  # clients, each with its own connection
    workers: int  # gateway worker processes
    seed: int
    pairs: int  # timed requests per member in the history pairs
    pair_warmup: int  # untimed ones before them

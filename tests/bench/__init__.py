"""Benchmarks: `make bench` (``python -m tests.bench.run``). Figures only, each beside a baseline measured
in the same run; nothing here passes or fails on wall time."""

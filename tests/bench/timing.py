"""Adaptive, interleaved micro-benchmark timing on ``time.perf_counter_ns``.

Cases measured together run round-robin in short chunks (the order rotating every round), so drift of the
machine (frequency, noisy neighbours on a shared host) lands on every case alike and the ratios between
them stay meaningful. Each case is warmed up first, then timed until it has used its share of the budget.
A sample is one call, or a batch of calls for operations faster than ``MIN_SAMPLE_NS`` (so the clock's
own cost stays below ~1 %); medians and p99 are per call. The garbage collector is off while a sample
runs (as in ``timeit``) and collects between rounds, outside the timed region.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MIN_SAMPLE_NS = 20_000  # batch fast operations until one sample takes at least this long
CHUNK_NS = 4_000_000  # time one case spends per round before the next case runs


@dataclass(frozen=True, slots=True)
class Budget:
    """How long to measure each case: ``seconds`` after ``warmup_seconds``, within the sample bounds."""

    seconds: float
    warmup_seconds: float
    min_samples: int
    max_samples: int = 200_000


FULL = Budget(seconds=0.4, warmup_seconds=0.05, min_samples=15)
QUICK = Budget(seconds=0.004, warmup_seconds=0.0, min_samples=3)


@dataclass(frozen=True, slots=True)
class Case:
    """A callable to time. ``setup`` (optional) runs before every sample, outside the timed region."""

    fn: Callable[[], object]
    setup: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    samples: int
    batch: int
    median_ns: float
    p99_ns: float

    @property
    def median_us(self) -> float:
        return self.median_ns / 1e3

    @property
    def p99_us(self) -> float:
        return self.p99_ns / 1e3

    @property
    def ops_per_s(self) -> float:
        return 1e9 / self.median_ns

    def throughput_mb_s(self, size: int) -> float:
        """Bytes per second in MB (10^6 bytes) for an operation over ``size`` bytes."""
        return size / self.median_ns * 1e3


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of fewer than 100 samples is their maximum)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class _Run:
    case: Case
    batch: int = 1
    spent_ns: int = 0
    samples: list[float] = field(default_factory=list)


def _sample(run: _Run) -> float:
    if run.case.setup is not None:
        run.case.setup()
    fn = run.case.fn
    start = time.perf_counter_ns()
    for _ in range(run.batch):
        fn()
    elapsed = time.perf_counter_ns() - start
    run.spent_ns += elapsed
    return elapsed / run.batch


def _warm_up(run: _Run, budget: Budget) -> None:
    """Call until the warm-up time is used (at least twice) and size the batch from the last call."""
    deadline = time.perf_counter_ns() + int(budget.warmup_seconds * 1e9)
    calls, last = 0, 0.0
    while calls < 2 or time.perf_counter_ns() < deadline:
        last = _sample(run)
        calls += 1
    run.batch = max(1, math.ceil(MIN_SAMPLE_NS / max(last, 1.0)))
    run.spent_ns = 0


def measure(cases: Mapping[str, Case | Callable[[], object]], budget: Budget) -> dict[str, Stats]:
    """Time every case, interleaved; each gets ``budget.seconds`` of timed calls (and the minimum samples)."""
    runs = {name: _Run(case if isinstance(case, Case) else Case(case)) for name, case in cases.items()}
    target_ns = int(budget.seconds * 1e9)
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for run in runs.values():
            _warm_up(run, budget)
        order = list(runs.values())
        while True:
            pending = [
                r
                for r in order
                if (r.spent_ns < target_ns or len(r.samples) < budget.min_samples)
                and len(r.samples) < budget.max_samples
            ]
            if not pending:
                break
            for run in pending:
                chunk_end = time.perf_counter_ns() + CHUNK_NS
                run.samples.append(_sample(run))
                while time.perf_counter_ns() < chunk_end and len(run.samples) < budget.max_samples:
                    run.samples.append(_sample(run))
            order.append(order.pop(0))
            gc.collect(0)  # the young generation only: cheap, and keeps memory flat
    finally:
        if was_enabled:
            gc.enable()
    return {
        name: Stats(
            samples=len(run.samples),
            batch=run.batch,
            median_ns=statistics.median(run.samples),
            p99_ns=percentile(run.samples, 0.99),
        )
        for name, run in runs.items()
    }

"""A principal's access history: where it is kept (``HistoryStore``) and what it says about a request
(``summarize``).

``summarize`` is pure and deterministic: the same events, clock, device and region give the same stats.
Its conventions:

* **Windows** end at ``now``: an event is in the last hour when ``0 <= now - time < 3600`` (an event exactly
  one hour old is not), likewise 24 h and 30 days. Events older than 30 days are ignored; events stamped
  after ``now`` (clock skew between instances) count as happening now.
* **Requests** count every attempt; **failures** count ``outcome == "failure"`` (a policy denial is a
  request, not a failure).
* **Familiarity** comes only from approved accesses: the last access (``seconds_since_last``), known device
  and region, the hour-of-day habit and impossible travel. So a failed attempt never makes a device look
  known or a trip look plausible: adding a failure can only raise counters, never reassure (the scoring's
  monotonicity rests on this).
* **Distinct devices / regions** (30 days) count every attempt plus the current request, so they are >= 1.
* **Impossible travel**: the last approved access and the current request are more than
  ``MIN_TRAVEL_KM`` apart and covering that distance in the elapsed time needs more than ``MAX_SPEED_KMH``
  (900 km/h, an airliner's cruise). Places are the event's ``lat``/``lon`` when given, otherwise the
  approximate coordinates of the region in ``REGION_COORDINATES`` (AWS region codes, placed at their
  metro area); unknown places never count as impossible. ``MIN_TRAVEL_KM`` absorbs the coarseness of
  region-level places (London and Paris are 340 km apart but a VPN hop away).
* **Hour habit**: the fraction of approved accesses (30 days) whose hour of day is within +-2 h of the
  current one (circularly: 23 h is next to 0 h); None with fewer than ``HABIT_MIN_SAMPLES`` accesses.
"""

from __future__ import annotations

import math
import threading
import time as _time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from reliquary.errors import InvalidRequestError
from reliquary.trust.model import AccessEvent, HistoryStats

HOUR: Final = 3600
DAY: Final = 86_400
LOOKBACK: Final = 30 * DAY
MAX_SPEED_KMH: Final = 900.0
MIN_TRAVEL_KM: Final = 500.0
HABIT_MIN_SAMPLES: Final = 5
HABIT_SPREAD_HOURS: Final = 2
EARTH_RADIUS_KM: Final = 6371.0

# Approximate (lat, lon) of AWS regions' metro areas; good to a few hundred km, which MIN_TRAVEL_KM absorbs.
REGION_COORDINATES: Final[dict[str, tuple[float, float]]] = {
    "us-east-1": (38.9, -77.4),  # N. Virginia
    "us-east-2": (40.0, -83.0),  # Ohio
    "us-west-1": (37.4, -121.9),  # N. California
    "us-west-2": (45.8, -119.7),  # Oregon
    "ca-central-1": (45.5, -73.6),  # Montreal
    "ca-west-1": (51.0, -114.1),  # Calgary
    "mx-central-1": (20.6, -100.4),  # Queretaro
    "sa-east-1": (-23.5, -46.6),  # Sao Paulo
    "eu-west-1": (53.3, -6.3),  # Dublin
    "eu-west-2": (51.5, -0.1),  # London
    "eu-west-3": (48.9, 2.35),  # Paris
    "eu-central-1": (50.1, 8.7),  # Frankfurt
    "eu-central-2": (47.4, 8.5),  # Zurich
    "eu-north-1": (59.3, 18.1),  # Stockholm
    "eu-south-1": (45.5, 9.2),  # Milan
    "eu-south-2": (41.6, -0.9),  # Aragon
    "il-central-1": (32.1, 34.8),  # Tel Aviv
    "me-south-1": (26.1, 50.6),  # Bahrain
    "me-central-1": (25.2, 55.3),  # UAE
    "af-south-1": (-33.9, 18.4),  # Cape Town
    "ap-south-1": (19.1, 72.9),  # Mumbai
    "ap-south-2": (17.4, 78.5),  # Hyderabad
    "ap-east-1": (22.3, 114.2),  # Hong Kong
    "ap-northeast-1": (35.7, 139.7),  # Tokyo
    "ap-northeast-2": (37.6, 127.0),  # Seoul
    "ap-northeast-3": (34.7, 135.5),  # Osaka
    "ap-southeast-1": (1.35, 103.8),  # Singapore
    "ap-southeast-2": (-33.9, 151.2),  # Sydney
    "ap-southeast-3": (-6.2, 106.8),  # Jakarta
    "ap-southeast-4": (-37.8, 145.0),  # Melbourne
}


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two (lat, lon) points in degrees."""
    lat1, lon1 = math.radians(a[0]), math.radians(a[1])
    lat2, lon2 = math.radians(b[0]), math.radians(b[1])
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _place(event: AccessEvent) -> tuple[float, float] | None:
    if event.lat is not None and event.lon is not None:
        return (event.lat, event.lon)
    return REGION_COORDINATES.get(event.region)


def is_impossible_travel(
    previous: tuple[float, float] | None, current: tuple[float, float] | None, elapsed_s: int
) -> bool:
    """True when going from ``previous`` to ``current`` in ``elapsed_s`` seconds needs more than
    ``MAX_SPEED_KMH`` over more than ``MIN_TRAVEL_KM``; False when either place is unknown."""
    if previous is None or current is None:
        return False
    km = distance_km(previous, current)
    return km > MIN_TRAVEL_KM and km > MAX_SPEED_KMH * max(elapsed_s, 0) / HOUR


def summarize(
    events: Sequence[AccessEvent],
    *,
    now: int,
    device: str,
    region: str,
    lat: float | None = None,
    lon: float | None = None,
) -> HistoryStats:
    """The history facts of a request from ``device`` in ``region`` at ``now`` (see the module docs).

    ``lat``/``lon`` place the current request precisely; without them its region's coordinates are used.
    """
    requests_1h = failures_1h = requests_24h = failures_24h = 0
    devices = {device}
    regions = {region}
    last: AccessEvent | None = None
    known_device = known_region = False
    approved = 0
    usual = 0
    hour_now = (now // HOUR) % 24
    for event in events:
        age = now - event.time
        if age >= LOOKBACK:
            continue
        age = max(age, 0)
        failed = event.outcome == "failure"
        if age < DAY:
            requests_24h += 1
            failures_24h += failed
            if age < HOUR:
                requests_1h += 1
                failures_1h += failed
        devices.add(event.device)
        regions.add(event.region)
        if event.outcome != "approve":
            continue
        approved += 1
        # Ties on time: the later event in the sequence is the last one (deterministic for a given order).
        if last is None or event.time >= last.time:
            last = event
        known_device = known_device or event.device == device
        known_region = known_region or event.region == region
        diff = abs((min(event.time, now) // HOUR) % 24 - hour_now)
        usual += min(diff, 24 - diff) <= HABIT_SPREAD_HOURS
    seconds_since_last = None if last is None else max(now - last.time, 0)
    here = (lat, lon) if lat is not None and lon is not None else REGION_COORDINATES.get(region)
    impossible = (
        last is not None
        and seconds_since_last is not None
        and is_impossible_travel(_place(last), here, seconds_since_last)
    )
    return HistoryStats(
        requests_1h=requests_1h,
        failures_1h=failures_1h,
        requests_24h=requests_24h,
        failures_24h=failures_24h,
        distinct_devices_30d=len(devices),
        distinct_regions_30d=len(regions),
        seconds_since_last=seconds_since_last,
        impossible_travel=impossible,
        known_device=known_device,
        known_region=known_region,
        hour_habit=usual / approved if approved >= HABIT_MIN_SAMPLES else None,
    )


class HistoryStore(Protocol):
    """Where access events are kept, per tenant and subject. Adapters expire events at ``expires_at``."""

    def recent(self, tenant_id: str, subject: str, *, since: int) -> list[AccessEvent]:
        """The events at or after ``since``, oldest first."""
        ...

    def record(
        self,
        tenant_id: str,
        subject: str,
        event: AccessEvent,
        *,
        expires_at: int,
        event_id: str | None = None,
    ) -> None:
        """Keep ``event`` until ``expires_at`` (epoch seconds).

        With an ``event_id`` (the request id) the record is idempotent: recording the same id at the same
        time again replaces the event, so a retried task leaves one event per request."""
        ...


class InMemoryHistoryStore:
    """A ``HistoryStore`` in a dict, for tests and local runs. Thread-safe; keeps at most ``max_events``
    per (tenant, subject), dropping the oldest; ``clock`` decides expiry. Events with an ``event_id``
    are kept once per (time, event_id), as the DynamoDB adapter's sort key does."""

    def __init__(self, *, clock: Callable[[], float] = _time.time, max_events: int = 10_000) -> None:
        if max_events < 1:
            raise InvalidRequestError("max_events must be at least 1", max_events=max_events)
        self._clock = clock
        self._max = max_events
        # Per (tenant, subject): each event, its expiry and its dedup key (time and event id) if any.
        self._events: dict[tuple[str, str], list[tuple[AccessEvent, int, tuple[int, str] | None]]] = {}
        self._lock = threading.Lock()

    def recent(self, tenant_id: str, subject: str, *, since: int) -> list[AccessEvent]:
        now = self._clock()
        with self._lock:
            kept = [row for row in self._events.get((tenant_id, subject), []) if row[1] > now]
            if kept:
                self._events[(tenant_id, subject)] = kept
            else:
                self._events.pop((tenant_id, subject), None)
        return sorted((e for e, _, _ in kept if e.time >= since), key=lambda e: e.time)

    def record(
        self,
        tenant_id: str,
        subject: str,
        event: AccessEvent,
        *,
        expires_at: int,
        event_id: str | None = None,
    ) -> None:
        key = None if event_id is None else (event.time, event_id)
        with self._lock:
            events = self._events.setdefault((tenant_id, subject), [])
            if key is not None:
                events[:] = [row for row in events if row[2] != key]
            events.append((event, expires_at, key))
            if len(events) > self._max:
                events.sort(key=lambda row: row[0].time)
                del events[: len(events) - self._max]

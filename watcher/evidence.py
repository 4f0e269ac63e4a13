"""True counts for the judge: raw counters read at one pinned instant, differenced per series.

Every query of a probe is evaluated at the same Prometheus `time=`, so canary and control are
read at one instant. The counts are differences of the raw counters between probes, per series:
exact integers, no increase() extrapolation; a series whose counter went down was restarted,
and counts from 0 again (as Prometheus' own reset handling does). A series missing from a reading
(marked stale after a failed scrape, its node down for a while) keeps its last value, so that when
it is back only what it counted since is new, not its whole life. A failed query is retried
within the probe; a probe that still fails is blind and the next good probe's differences cover
the gap. The Prober keeps each probe's counts, so the judge sees the evidence since the canary
started serving and over the last `sliding` seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from watcher import stats
from watcher.judge import ProbeInput
from watcher.prom import PromError, QueryResult
from watcher.promql import RenderedQueries
from watcher.sli import SeriesKey, ShapeError, SideSLI, newest_sample_age, parse_le, raw_counters


class Querier(Protocol):
    def query(self, promql: str, time: float | None = None) -> QueryResult: ...


@dataclass(frozen=True)
class Counters:
    """One side's raw counters at one instant."""

    counts: dict[SeriesKey, tuple[str, float]]  # series -> (code, value)
    buckets: dict[SeriesKey, tuple[str, float]]  # series -> (le, value)
    newest_sample_age: float | None


def difference(
    before: dict[SeriesKey, tuple[str, float]], after: dict[SeriesKey, tuple[str, float]]
) -> tuple[dict[str, float], int]:
    """Counts between two readings summed by label value, and how many series were reset."""
    out: dict[str, float] = {}
    resets = 0
    for key, (label, value) in after.items():
        prev = before.get(key)
        if prev is None:
            delta = value  # a series born since: all its counts are new
        elif value < prev[1]:
            delta, resets = value, resets + 1  # restarted: counting from 0 again
        else:
            delta = value - prev[1]
        out[label] = out.get(label, 0.0) + delta
    return out, resets


def carry(
    before: dict[SeriesKey, tuple[str, float]], after: dict[SeriesKey, tuple[str, float]]
) -> dict[SeriesKey, tuple[str, float]]:
    """The reading to difference the next one against: `after`, and the series missing from it
    at their value in `before` (a stale series is not a series born again when it is back)."""
    return {**before, **after}


def side_sli(codes: dict[str, float], les: dict[str, float], age: float | None, span: float) -> SideSLI:
    buckets = {parse_le(le): n for le, n in les.items()}
    return SideSLI(
        requests=sum(codes.values()),
        codes=codes,
        p95=stats.histogram_quantile(buckets, 0.95),
        newest_sample_age=age,
        range_seconds=span,
        buckets=buckets,
    )


def combine(parts: Sequence[SideSLI]) -> SideSLI:
    """The sum of several spans' counts (newest_sample_age is the last one's)."""
    codes: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for p in parts:
        for code, n in p.codes.items():
            codes[code] = codes.get(code, 0.0) + n
        for le, n in p.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + n
    return SideSLI(
        requests=sum(codes.values()),
        codes=codes,
        p95=stats.histogram_quantile(buckets, 0.95),
        newest_sample_age=parts[-1].newest_sample_age if parts else None,
        range_seconds=sum(p.range_seconds for p in parts),
        buckets=buckets,
    )


def subtract(total: SideSLI, before: SideSLI) -> SideSLI:
    """The counts of `total` that came after `before` (both since the same start)."""
    codes = {c: n - before.codes.get(c, 0.0) for c, n in total.codes.items()}
    buckets = {le: n - before.buckets.get(le, 0.0) for le, n in total.buckets.items()}
    return SideSLI(
        requests=sum(codes.values()),
        codes=codes,
        p95=stats.histogram_quantile(buckets, 0.95),
        newest_sample_age=total.newest_sample_age,
        range_seconds=total.range_seconds - before.range_seconds,
        buckets=buckets,
    )


def _ask(client: Querier, promql: str, when: float | None, retries: int) -> QueryResult:
    for attempt in range(retries + 1):
        try:
            return client.query(promql, time=when)
        except PromError:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


@dataclass
class Prober:
    """Reads both sides at each probe and keeps the counts since the first reading."""

    client: Querier
    queries: dict[str, RenderedQueries]
    sliding: float = 300.0
    retries: int = 1
    previous: dict[str, Counters] | None = None
    previous_at: float = 0.0
    # Totals since the first reading after each probe, back to the start of the sliding span.
    history: list[tuple[float, SideSLI, SideSLI]] = field(default_factory=list)
    totals: tuple[SideSLI, SideSLI] | None = None  # since the first reading

    def read(self, when: float | None) -> dict[str, Counters]:
        out = {}
        for side, q in self.queries.items():
            counts = raw_counters(_ask(self.client, q.counts, when, self.retries), "code")
            buckets = raw_counters(_ask(self.client, q.buckets, when, self.retries), "le")
            age = newest_sample_age(_ask(self.client, q.freshness, when, self.retries))
            out[side] = Counters(counts, buckets, age if counts else None)
        return out

    def baseline(self, at: float, when: float | None) -> str | None:
        """The reading counts start from; the error when it failed (the first probe retries)."""
        try:
            self.previous, self.previous_at = self.read(when), at
        except (PromError, ShapeError) as exc:
            return str(exc)
        return None

    def probe(self, at: float, when: float | None) -> ProbeInput:
        try:
            now = self.read(when)
        except (PromError, ShapeError) as exc:
            return ProbeInput(at, error=str(exc))
        before = self.previous
        span, self.previous_at = at - self.previous_at, at
        if before is None:
            self.previous = now
            empty = {side: side_sli({}, {}, c.newest_sample_age, 0.0) for side, c in now.items()}
            return ProbeInput(at, canary=empty["canary"], control=empty["control"],
                              note="baseline: the counts start from this probe")  # fmt: skip
        sides: dict[str, SideSLI] = {}
        resets = 0
        for side, c in now.items():
            codes, r1 = difference(before[side].counts, c.counts)
            les, r2 = difference(before[side].buckets, c.buckets)
            sides[side] = side_sli(codes, les, c.newest_sample_age, span)
            resets += r1 + r2
        self.previous = {
            side: Counters(carry(before[side].counts, c.counts), carry(before[side].buckets, c.buckets),
                           c.newest_sample_age)
            for side, c in now.items()
        }  # fmt: skip
        canary, control = sides["canary"], sides["control"]
        if self.totals is None:
            self.totals = (canary, control)
        else:
            self.totals = (combine([self.totals[0], canary]), combine([self.totals[1], control]))
        # The sliding span: since the last total taken at or before `at - sliding`.
        cut = [h for h in self.history if h[0] <= at - self.sliding + 1e-9]
        self.history = [*cut[-1:], *(h for h in self.history if h[0] > at - self.sliding + 1e-9)]
        self.history.append((at, *self.totals))
        recent = self.totals
        if cut:
            recent = (subtract(self.totals[0], cut[-1][1]), subtract(self.totals[1], cut[-1][2]))
        note = f"{resets} counter series restarted since the last probe: counted from 0" if resets else None
        return ProbeInput(
            at,
            canary=canary,
            control=control,
            canary_total=self.totals[0],
            control_total=self.totals[1],
            canary_recent=recent[0],
            control_recent=recent[1],
            note=note,
        )


__all__ = ["Counters", "Prober", "Querier", "carry", "combine", "difference", "subtract"]

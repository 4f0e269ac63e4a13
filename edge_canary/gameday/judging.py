"""The drill's judgement from what it read itself: the fleet it starts from (which must be one known-good
release, serving, in rotation, with a .previous), the fleet back on it afterwards, and the clients' view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_canary.gameday import checks as chk
from edge_canary.gameday.context import Context
from edge_canary.gameday.disturbances import Disturbance
from edge_canary.gameday.errors import NotReady
from edge_canary.gameday.fleet import CHECK_PATIENCE_S, Fleet, NodeFiles, Sample, take_sample, write_samples
from edge_canary.gameday.report import DrillResult


@dataclass(frozen=True)
class Baseline:
    """The fleet's last-known-good state when the drill starts."""

    files: dict[str, NodeFiles]
    sample: Sample
    version: str
    sha: str


def baseline(ctx: Context, release_sha: str | None) -> Baseline:
    """The fleet as the drill finds it, which must be one release, serving, in rotation, with a .previous."""
    fleet = ctx.read()
    sample = take_sample(fleet, CHECK_PATIENCE_S)
    shas = {n: f.binary.sha256 for n, f in fleet.files.items()}
    if len(set(shas.values())) != 1 or None in shas.values():
        listed = ", ".join(f"{n} {(s or 'missing')[:12]}" for n, s in shas.items())
        raise NotReady(f"the fleet is not on one release (sha256 {listed}): put it back on its last-known-good "
                       "first (make rollback NODES=...)")
    versions = set(sample.versions.values())
    if len(versions) != 1 or None in versions:
        raise NotReady(f"the nodes do not all answer the same /version ({sample.versions}): fix the fleet first")
    ready = chk.check_ready(sample.lbs, fleet.node_lbs)
    if not ready.ok:
        raise NotReady(f"not every node is in rotation ({ready.detail}): make rollback NODES=<node> puts one back")
    no_previous = [n for n, f in fleet.files.items() if not f.previous.exists]
    if no_previous:
        raise NotReady(f"{', '.join(no_previous)} has no .previous: a drill needs a last-known-good to revert to "
                       "(one normal deploy creates it)")
    sha = next(iter(shas.values()))
    assert sha is not None
    if release_sha is not None and sha == release_sha:
        raise NotReady("the fleet already runs this drill's release: roll it back first (make rollback NODES=all)")
    return Baseline(fleet.files, sample, versions.pop() or "", sha)


def phase(name: str, check: chk.Check) -> chk.Check:
    """The same expectation checked at two moments of one drill gets the moment in its name."""
    return chk.Check(f"{name}: {check.name}", check.ok, check.detail)


def back_on_baseline(base: Baseline, fleet: Fleet, now: Sample, release_sha: str) -> list[chk.Check]:
    """The end of every drill: each node on the last-known-good release, READY, its .previous and config kept."""
    return [
        chk.check_versions(now.versions, fleet.files, base.version, base.sha, f"every node back on {base.version}"),
        chk.check_ready(now.lbs, fleet.node_lbs),
        chk.check_previous(base.files, fleet.files, base.sha, release_sha),
        chk.check_config(base.files, fleet.files),
    ]


def judge_traffic(result: DrillResult, folder: Path, samples: list[Sample], disturbance: Disturbance,
                  max_collateral: int, version: str, node: str, node_lbs: tuple[str, ...], pushed_at: float | None,
                  variant: str | None = None, background_share: float = 0.0) -> None:
    """Count the requests and the samples of the drill (once the load has stopped): the traffic checks and
    figures, and the moments the release was first seen and the old one back, on the timeline. With the
    fleet's background 5xx share, the last-known-good release's own failures within it are not collateral."""
    write_samples(samples, folder / "samples.jsonl")
    try:
        lines = (folder / "requests.jsonl").read_text().splitlines()
    except OSError:
        lines = []
    requests = chk.parse_requests(lines)
    t = chk.traffic(requests, version, result.thresholds[0], variant)
    if background_share > 0:
        t, within = chk.split_background(requests, t, result.lkg_version, background_share)
        result.checks.append(within)
    result.traffic = t
    result.checks += [
        chk.check_traffic_flowed(t),
        chk.check_release_traffic(result.scenario.expect.release_traffic, t, version),
        disturbance.collateral(requests, version, t, max_collateral, samples),
    ]
    result.first_bad_at = t.first_bad_at
    if t.first_bad_at is not None:
        result.event("first bad response", "fault", t.first_bad_at)
    result.pushed_at = pushed_at
    served = chk.first_seen(samples, node, version)
    if served is not None:
        result.event(f"{node} serving {version}", "step", served)
    if variant is not None:
        last = chk.last_answer(requests, version, variant) if result.detected_at else None
        result.restored_at = last
        if last is not None:
            result.event(f"last answer from the {variant} code path", "restore", last)
    elif result.scenario.expect.reverted:
        since = result.detected_at or served
        result.restored_at = chk.restored_at(samples, node, result.lkg_version, since, node_lbs)
        if result.restored_at is not None:
            result.event(f"{node} serving {result.lkg_version} again, READY", "restore", result.restored_at)

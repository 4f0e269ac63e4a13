"""One drill, start to end: check the fleet is on one known-good release, start the load, run the
real playbooks, disturb them when the scenario says so, read the fleet again, judge, clean up.

The judgement never takes the tool's word for the fleet's state: files are read on the nodes,
versions from each node's /version, rotation from every HAProxy admin socket, and failures from
the load generator's own lines. The tool's verdict is read too, but only to compare it with the
expected one.

The drill's other jobs live beside it: running the plays (plays), the disturbance (disturbances),
reading the tool's records (records), the timeline (timeline), judging (judging, checks) and putting
the fleet back (restore).
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from edge_canary.gameday import checks as chk
from edge_canary.gameday.context import Context, artifact, artifact_version, sha256
from edge_canary.gameday.disturbances import Disturbance, Outcome, Scene, for_scenario
from edge_canary.gameday.errors import DrillError, NotReady, RunError
from edge_canary.gameday.fleet import CHECK_PATIENCE_S, Fleet, Sample, Sampler, take_sample
from edge_canary.gameday.judging import Baseline, back_on_baseline, baseline, judge_traffic, phase
from edge_canary.gameday.plays import Loadgen, Play, PlayRunner
from edge_canary.gameday.records import detection_time, first_decision_at, rollout_said, tool_said
from edge_canary.gameday.report import DrillResult
from edge_canary.gameday.restore import Restore, stop_plays, stop_watchers
from edge_canary.gameday.scenarios import ACCEPTANCE, CANARY, PROMOTE, ROLLOUT, Scenario, watch_window
from edge_canary.gameday.timeline import mark_detection, record_events, set_selectors
from edge_canary.ops.summary import load_record

WARM_UP_S = 5.0  # load through the LB before the drill changes anything, which must all succeed
NEW, LEGACY = 'job="edge",variant="new"', 'job="edge",variant="legacy"'  # a rollout's canary and control


@dataclass
class Drill:
    ctx: Context
    scenario: Scenario
    result: DrillResult = field(init=False)
    folder: Path = field(init=False)
    plays: PlayRunner = field(init=False)
    disturbance: Disturbance = field(init=False)
    base: Baseline | None = None
    loadgen: Loadgen | None = None
    sampler: Sampler | None = None
    reading: tuple[Fleet, Sample] | None = None  # the fleet as last read, None once a play may have changed it
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.folder = self.ctx.folder / self.scenario.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.result = DrillResult(self.scenario, f"{self.ctx.run_id}-{self.scenario.name}",
                                  self.ctx.options.inventory or "ansible.cfg's (the lab)", time.time())
        c = self.ctx.fleet.control
        self.result.thresholds = (c.p95_threshold, c.err_threshold)
        self.plays = PlayRunner(self.ctx, self.result, self.folder, self.say, self.forget_reading)
        canary = self.ctx.options.canary or self.ctx.fleet.nodes[0]
        self.disturbance = for_scenario(self.scenario, Scene(
            canary=canary, peers=[n for n in self.ctx.fleet.nodes if n != canary], lbs_of=self.ctx.fleet.lbs_of,
            lab_dir=c.lab_dir, prom_switch=self.ctx.options.prom_switch, mark=self.mark, say=self.say,
            note=self.result.cleanup.append))

    def read(self) -> tuple[Fleet, Sample]:
        fleet = self.ctx.read()
        self.reading = (fleet, take_sample(fleet, CHECK_PATIENCE_S))
        return self.reading

    def forget_reading(self) -> None:
        self.reading = None

    def say(self, line: str) -> None:
        self.ctx.log(f"gameday {self.scenario.name}: {line}")

    def mark(self, label: str, kind: str) -> float:
        at = time.time()
        self.result.event(label, kind, at)
        return at

    # --- the flows ----------------------------------------------------------------------------

    def run(self) -> DrillResult:
        try:
            flows = {CANARY: self.canary_flow, ROLLOUT: self.rollout_flow, ACCEPTANCE: self.acceptance_flow}
            flows[self.scenario.flow]()
        except NotReady as exc:
            self.result.error = str(exc)
            self.result.refused = True  # raised only before anything changes
            self.say(f"not started: {exc}")
        except (DrillError, RunError, OSError) as exc:
            self.result.error = str(exc)
            self.say(f"BROKE: {exc}")
        except KeyboardInterrupt:
            self.result.error = "interrupted: the drill stopped where it was and cleaned up"
            self.result.interrupted = True
            self.say("interrupted: cleaning up")
        except Exception as exc:  # a bug in the drill: still clean up, and keep the traceback
            (self.folder / "error.txt").write_text(traceback.format_exc())
            self.result.error = f"internal error: {type(exc).__name__}: {exc} (traceback in {self.folder}/error.txt)"
            self.say(f"BROKE: {self.result.error}")
        self.finish()
        return self.result

    def prepare(self) -> tuple[Path, str, str]:
        path = artifact(self.ctx, self.scenario.release, self.folder)
        sha, version = sha256(path), artifact_version(path)
        self.result.release_version, self.result.release_sha = version, sha
        self.base = baseline(self.ctx, sha)
        self.result.lkg_version, self.result.lkg_sha = self.base.version, self.base.sha
        self.say(f"fleet on {self.base.version} (sha256 {self.base.sha[:12]}) everywhere, serving, with a .previous; "
                 f"release {version} (sha256 {sha[:12]})")
        return path, sha, version

    def start_load(self) -> None:
        """Start the load and the sampler; refuse (nothing changed yet) when the fleet already fails requests
        before the drill touches it: collateral failures would then prove nothing."""
        requests = self.folder / "requests.jsonl"
        self.loadgen = Loadgen(self.ctx.loadgen_url, self.ctx.options.rps, requests,
                               self.folder / "loadgen.log").start()
        self.sampler = Sampler(self.ctx.fleet).start()
        self.result.event(f"load generator started ({self.ctx.options.rps:g} req/s through the LB)")
        time.sleep(WARM_UP_S)
        try:
            early = chk.parse_requests(requests.read_text().splitlines())
        except OSError:
            early = []
        failed = [r for r in early if r.sent and r.failed]
        if self.base is not None:  # the fleet's own background 5xx, within what BACKGROUND_ERRORS gives
            own, allowed, _ = chk.own_failures(early, failed, self.base.version, self.ctx.options.background_errors)
            if len(own) <= allowed:
                failed = [r for r in failed if r not in own]
        if not early or failed:
            what = f"{len(failed)} of {len(early)} requests failed" if early else "no request was answered"
            raise NotReady(f"the fleet is not serving cleanly before the drill ({what} in {WARM_UP_S:g} s through "
                           f"{self.ctx.loadgen_url}, e.g. {failed[0].status or failed[0].error if failed else '-'}); "
                           "a drill on a fleet that already fails proves nothing: look at make status first")

    def sampler_samples(self) -> list[Sample]:
        return list(self.sampler.samples) if self.sampler else []

    def finish_traffic(self, version: str, node: str, pushed_at: float | None, variant: str | None = None) -> None:
        """Stop the load, count the requests, and work out the drill's figures."""
        if self.loadgen is not None:
            self.loadgen.stop()
        samples = self.sampler.stop() if self.sampler else []
        judge_traffic(self.result, self.folder, samples, self.disturbance, self.ctx.options.max_collateral,
                      version, node, self.ctx.fleet.node_lbs[node], pushed_at, variant,
                      self.ctx.options.background_errors)

    def canary_flow(self) -> None:
        s, ctx, result = self.scenario, self.ctx, self.result
        canary = result.canary = ctx.canary()
        peers = [n for n in ctx.fleet.nodes if n != canary]
        window = watch_window(s, ctx.window, ctx.interval, ctx.max_staleness)
        settings = {"max_staleness": ctx.max_staleness} if s.blinds_watcher else None
        self.disturbance.ready()
        path, sha, version = self.prepare()
        assert self.base is not None
        set_selectors(result, f'job="edge",node="{canary}"', f'job="edge",node!="{canary}"',
                      ctx.fleet.control.scrape_interval)
        self.start_load()
        code, run_dir, play = self.plays.deploy("deploy", path, canary, window, settings, self.disturb)
        deployed = code
        verdict, reason = tool_said(code, run_dir, play, canary)
        result.tool_verdict, result.tool_reason = verdict, reason
        record_events(result, run_dir, [canary, *peers])
        mark_detection(result, verdict, detection_time(verdict, run_dir, play))
        node_record = load_record(run_dir / "nodes" / f"{canary}.json") if run_dir else {}
        pushed = [float(st["at"]) for st in node_record.get("steps", []) if st.get("step") == "push"]
        after, now = self.read()
        checks = [chk.check_tool_verdict(s.expect.tool_verdict, verdict)]
        if s.expect.promoted:  # every node on the release; the drill rolls them all back itself
            checks += [
                chk.check_versions(now.versions, after.files, version, sha, f"every node promoted to {version}"),
                phase("promoted", chk.check_ready(now.lbs, ctx.fleet.node_lbs)),
                chk.check_reverted(set(), chk.reverted_nodes(self.base.files, after.files, sha)),
            ]
            code = self.plays.rollback("restore", "all")
            after, now = self.read()
            checks.append(chk.Check("deliberate rollback", code == 0, f"rollback of every node exited {code}"))
        elif not s.expect.reverted:  # the canary promoted, the roll stopped before any peer
            binary = after.files[canary].binary.sha256
            checks += [
                chk.Check(f"{canary} promoted to {version}", now.versions.get(canary) == version and binary == sha,
                          f"{canary} serves {now.versions.get(canary)}, sha256 {(binary or '-')[:12]}"),
                chk.check_untouched(peers, self.base.files, after.files, self.sampler_samples(), version),
                phase("after the deploy", chk.check_ready(now.lbs, ctx.fleet.node_lbs)),
            ]
            code = self.plays.rollback("restore", canary)
            after, now = self.read()
            checks.append(chk.Check("deliberate rollback", code == 0, f"rollback of {canary} exited {code}"))
        else:  # the canary put back by the tool, the peers untouched
            checks += [
                chk.check_reverted({canary}, chk.reverted_nodes(self.base.files, after.files, sha)),
                chk.check_untouched(peers, self.base.files, after.files, self.sampler_samples(), version),
            ]
        checks += back_on_baseline(self.base, after, now, sha)
        checks += self.disturbance.checks(Outcome(deployed, play.output(), result.started_at, result.detected_at))
        result.checks = checks
        self.finish_traffic(version, canary, pushed[0] if pushed else None)

    def disturb(self, announce: Path, play: Play) -> None:
        """Beside the deploy (a thread): the scenario's disturbance."""
        self.disturbance.during(announce, play, self._stop)

    def rollout_flow(self) -> None:
        ctx, result = self.ctx, self.result
        path, sha, version = self.prepare()
        assert self.base is not None
        canary = ctx.canary()
        result.restore_label = "the last answer from the new code path"
        set_selectors(result, NEW, LEGACY, ctx.fleet.control.scrape_interval)
        self.start_load()
        # Ship the release dark first (rollout_pct=0: its broken code path gets no traffic), as a normal deploy.
        code, run_dir, play = self.plays.deploy("dark-deploy", path, canary, ctx.window)
        said, _ = tool_said(code, run_dir, play, canary)
        record_events(result, run_dir, ctx.fleet.nodes)
        dark, now = self.read()
        checks = [chk.Check("dark deploy promoted", said == PROMOTE and code == 0,
                            f"the tool said {said}, exit {code}"),
                  chk.check_versions(now.versions, dark.files, version, sha, f"every node on {version} (dark)")]
        if not all(c.ok for c in checks):
            result.tool_verdict = f"dark deploy: {said}"
            result.checks = checks
            self.finish_traffic(version, canary, None, variant="new")
            return
        code, run_dir, play = self.plays.rollout("rollout", ctx.options.rollout_stages, ctx.window)
        verdict, reason, stage_dir = rollout_said(code, run_dir)
        result.tool_verdict, result.tool_reason = verdict, reason
        result.queries = {}
        if stage_dir is not None:
            record_events(result, stage_dir, [])
        if not result.queries:
            set_selectors(result, NEW, LEGACY, ctx.fleet.control.scrape_interval)
        mark_detection(result, verdict, first_decision_at(stage_dir))
        after, now = self.read()
        checks += [
            chk.check_tool_verdict(self.scenario.expect.tool_verdict, verdict),
            chk.check_rollout_off(after.files),
            chk.check_versions(now.versions, after.files, version, sha, f"the rollout changed no binary ({version})"),
            phase("after the rollout", chk.check_ready(now.lbs, ctx.fleet.node_lbs)),
        ]
        code = self.plays.rollback("restore", "all")
        after, now = self.read()
        checks.append(chk.Check("deliberate rollback", code == 0, f"rollback of every node exited {code}"))
        checks += back_on_baseline(self.base, after, now, sha)
        result.checks = checks
        self.finish_traffic(version, canary, None, variant="new")

    def acceptance_flow(self) -> None:
        ctx = self.ctx
        path, sha, version = self.prepare()
        assert self.base is not None
        canary = self.result.canary = ctx.canary()
        set_selectors(self.result, f'job="edge",node="{canary}"', f'job="edge",node!="{canary}"',
                      ctx.fleet.control.scrape_interval)
        self.start_load()
        checks: list[chk.Check] = []
        for label in ("deploy-1", "rollback", "deploy-2", "restore"):
            if label.startswith("deploy"):
                code, run_dir, play = self.plays.deploy(label, path, canary, ctx.window)
                verdict, _ = tool_said(code, run_dir, play, canary)
                record_events(self.result, run_dir, ctx.fleet.nodes)
                want_version, want_sha = version, sha
                checks.append(chk.Check(f"{label}: promoted", verdict == PROMOTE and code == 0,
                                        f"the tool said {verdict}, exit {code}"))
            else:
                code = self.plays.rollback(label, "all")
                want_version, want_sha = self.base.version, self.base.sha
                checks.append(chk.Check(f"{label}: rollback succeeded", code == 0, f"exit {code}"))
            fleet, now = self.read()
            files = fleet.files
            for check in (chk.check_versions(now.versions, files, want_version, want_sha, "every node on "
                                             f"{want_version}"),
                          chk.check_ready(now.lbs, ctx.fleet.node_lbs),
                          chk.check_previous(self.base.files, files, self.base.sha, sha)):
                checks.append(phase(label, check))
        checks.append(chk.check_config(self.base.files, files))
        self.result.tool_verdict = PROMOTE if all(c.ok for c in checks if "promoted" in c.name) else "failed"
        self.result.checks = checks
        self.finish_traffic(version, canary, None)

    # --- cleaning up --------------------------------------------------------------------------

    def finish(self) -> None:
        """Whatever happened, leave the fleet on the last-known-good release, and say what it took."""
        self._stop.set()
        note = self.result.cleanup.append
        if stop_plays(self.plays.plays, note) | stop_watchers(self.plays.run_dirs, note):
            self.reading = None
        self.disturbance.restore()
        if self.loadgen is not None:
            self.loadgen.stop()
        if self.sampler is not None:
            self.sampler.stop()
        if self.base is not None:
            restore = Restore(self.base, self.result, self.ctx.options.artifacts_dir, self.read,
                              self.plays.rollback, self.say)
            try:
                restore(self.reading)
            except Exception as exc:
                self.result.cleanup.append(f"CLEANUP FAILED: {type(exc).__name__}: {exc}; check the fleet with "
                                           "make status and put it back with make rollback")
                self.result.error = self.result.error or "the cleanup failed"
        self.result.ended_at = time.time()

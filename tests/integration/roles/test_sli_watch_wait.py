"""The SLI gate's wait when the canary's roll stopped before its watcher started (the canary went
unreachable mid-roll and was dropped from the play): one plain message saying nothing was judged and what
to run, not a template error about a missing variable. A real ansible-playbook run on localhost, no lab."""

from __future__ import annotations

from pathlib import Path

from tests.integration.roles.test_sli_watch_credentials import play


def test_the_gate_says_plainly_that_no_watcher_was_started_for_the_canary(tmp_path: Path) -> None:
    done = play(tmp_path, "edge.canary.sli_watch", "wait", {"sli_watch_started": {}, "sli_watch_canary_node": "edge-2"})
    assert done.returncode != 0
    assert "no SLI watcher was started for the canary edge-2" in done.stdout, done.stdout[-3000:]
    assert "make rollback NODES=edge-2" in done.stdout and "has no attribute" not in done.stdout

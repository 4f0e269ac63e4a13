"""The SLI window of the lab deploys a test needs promoted.

Five 3 s probes: a promotion needs 80 % of the probes conclusive green, and the first probe after
the canary is put back in rotation may come up short of min_requests (haproxy_server's ramp still
holds it below its full weight for 4 s, and a busy machine slows the lab's load). With three probes
that one probe turns the verdict into HOLD; with five it is survived. A bad release ends the watch at
its first red probes anyway, so only green deploys pay for the longer window.
"""

PROMOTING_WINDOW = {"SLI_WINDOW": "15", "SLI_PROBE_INTERVAL": "3"}

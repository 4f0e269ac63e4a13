"""The calibration harness: the real judge against simulated traffic with Prometheus semantics.

traffic (what the nodes serve and their counters as Prometheus scrapes them), promsim (what
Prometheus answers: increase() with its extrapolation, histogram_quantile, timestamp, raw
instant vectors), harness (simulated windows through evidence.Prober and the judge),
scenarios (the rows of docs/CALIBRATION.md), report (the markdown). `make calibrate` runs it.
"""

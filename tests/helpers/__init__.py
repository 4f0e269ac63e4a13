"""Small helpers shared by the tests (processes, ports, HTTP readiness)."""

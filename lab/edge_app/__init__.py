"""The sample edge binary run by the lab: a small HTTP service with metrics and fault profiles.

Stdlib only: it is shipped as a zipapp and runs under the node's system python3.
"""

"""Game days: break a release on purpose with the real playbooks, and prove the automation catches it."""

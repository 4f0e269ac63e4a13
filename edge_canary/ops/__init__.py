"""The on-call tools: deploy, status, rollout, the locks, the verdict wait and the migration check."""

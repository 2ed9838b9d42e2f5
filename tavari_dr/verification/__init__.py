"""Verification: the checks (checks), the scheduled jobs that run them (jobs) and the quarterly
AWS drill's steps (quarterly)."""

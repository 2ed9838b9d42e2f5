"""Continuous capture of every committed change (`tavari-dr db stream`) and point-in-time restore (ADR 0020)."""

"""Breach scoping: which accounts a breach touched, from the data and from the logs (tavari-dr breach scope)."""

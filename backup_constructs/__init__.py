"""Reusable constructs.

Named ``backup_constructs`` rather than ``constructs``: a top-level package called
``constructs`` would shadow the ``constructs`` library every CDK app imports.
"""

"""Tavari backup and disaster recovery: the runtime (the ``tavari-dr`` CLI and what the Lambdas run).

``__version__`` is the version of this code, from git tags at build time (setuptools-scm; CONTRIBUTING.md,
"Versions"): in a Lambda bundle the ``_version.py`` the synth wrote beside this file (a bundle has no
installed distribution to ask), elsewhere the installed distribution's metadata. Read without setuptools-scm:
it is a build tool, never a runtime dependency.
"""

from __future__ import annotations

from importlib import metadata

# What a copy of the code that is neither installed nor bundled reports: not a version any build makes.
UNKNOWN_VERSION = "0.0.0+unknown"


def _version() -> str:
    try:
        from tavari_dr._version import version  # type: ignore[import-not-found, unused-ignore]  # bundles only
    except ImportError:
        pass
    else:
        return str(version)
    try:
        return metadata.version("tavari-dr")
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


__version__ = _version()

"""Developer tools that run from the repository (not shipped in the tavari-dr package)."""

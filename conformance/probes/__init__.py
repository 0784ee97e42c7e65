"""Probes measure; checks judge. Each probe runs at most once per model and run."""

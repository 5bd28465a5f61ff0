"""Everything that talks to git, in one place.

`run` is the only module that starts a `git` process: every command goes through its hardened
invocation. The rest are the git sources (staged, history, ranges), the exposure timeline
(`provenance`), the history caches and the scans that turn them into a ScanResult (`scans`).
Nothing here is imported at package import: the `--staged` path loads only what it uses.
"""

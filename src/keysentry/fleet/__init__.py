"""Fleet scans: every repository of an organisation, history-scanned on a Dask cluster into a
datastore, each distinct key verified once, reported from the store.

An orchestrator on top of the scanner: `listing` names the repositories, `mirror` keeps a
bare mirror of each, `job` runs one Dask task per repository (the history scan with its
clean-blob cache, then verification and one write), `store` is the datastore (SQLAlchemy
Core, SQLite or PostgreSQL, which never holds a key) and `report` renders it. None of these
is imported by the scan path: dask, sqlalchemy and PyGithub come with the `fleet` extra.
"""

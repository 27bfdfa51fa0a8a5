"""Run folders: the only code that knows their file names and formats.

Writers and readers exchange the typed results of `redline.model`; run.json carries a
schema version that is checked on every read.
"""

from redline.store.folder import AnyResult, Loaded, RunFolder, check_schema
from redline.store.host_facts import host_facts

__all__ = ["AnyResult", "Loaded", "RunFolder", "check_schema", "host_facts"]

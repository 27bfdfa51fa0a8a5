"""Use cases that tie the engine, the analysis and the store together.

What a library user calls; the CLI only parses arguments and displays.
"""

from redline.jobs.run import RunOutcome, run_fixed_rate

__all__ = ["RunOutcome", "run_fixed_rate"]

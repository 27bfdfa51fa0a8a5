"""Sampling the target's Python processes with py-spy while a probe runs.

The edge of profiling: starting and stopping py-spy, and the raw file it leaves. What the
samples say is decided in `redline.analysis.profile_stacks`; the flame graph is drawn by
`redline.report.flamegraph`.
"""

from redline.profile.pyspy import PTRACE_NEEDED, Profiler, ProfileRun, is_python, pyspy_binary, read_collapsed

__all__ = ["PTRACE_NEEDED", "ProfileRun", "Profiler", "is_python", "pyspy_binary", "read_collapsed"]

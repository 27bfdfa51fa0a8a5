"""Host and per-process sampling during a run (psutil). Records; never judges.

The judging lives in `redline.analysis.bottleneck`.
"""

from redline.model.series import MonitorSeries, ProcessInfo
from redline.monitor.sampler import Monitor
from redline.monitor.selectors import NamePattern, PidList, PidTree, ProcessSelector

__all__ = ["Monitor", "MonitorSeries", "NamePattern", "PidList", "PidTree", "ProcessInfo", "ProcessSelector"]

"""What a storm needs from a cloud: launch, one list call for all, delete, reach, clean up.

`StormDriver` is all a driver must do. A driver may do more, and the runner asks with
isinstance (both protocols are runtime-checkable), so the libvirt driver needs none of it:

- `ObservesSubStates`: the cloud's own states behind "building" (Nova's task states), as the
  last poll saw them, recorded as sub-marks and quoted in a stuck instance's error;
- `CountsCalls`: the API calls it made, by kind, so a run shows its one list call per poll;
- `labels`: what a human should read for a mark or phase it observes another way
  ({"ssh": "guest up (console marker GUEST-UP)"}), see `driver_labels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from redline.storm.model import InstanceSpec, Observed
from redline.storm.probes import Pinger, SshOutcome


class StormDriver(Protocol):
    name: str

    def prepare(self, specs: list[InstanceSpec]) -> list[str]:
        """Set up what the run needs (network, …); return notes for the result."""
        ...

    def launch(self, spec: InstanceSpec) -> None:
        """Request one instance; returns once the request is accepted (raises on refusal)."""
        ...

    def poll(self) -> dict[str, str]:
        """ONE call listing every instance of this run: name -> "running" | "building" | "error" | other."""
        ...

    def address(self, spec: InstanceSpec) -> str | None:
        """Where to ping / ssh an instance, or None when it cannot be reached from here. A driver
        whose guest check is not a network login (a console marker) returns any token."""
        ...

    def pinger(self) -> Pinger | None: ...

    def ssh(self, spec: InstanceSpec) -> SshOutcome:
        """One attempt at the "ssh" mark: an SSH login, or whatever the driver's labels say."""
        ...

    def delete(self, spec: InstanceSpec) -> None: ...

    def cleanup(self) -> list[str]:
        """Remove everything of this run that is left; return what was removed. Never raises."""
        ...


@runtime_checkable
class ObservesSubStates(Protocol):
    # (state, the storm phase it lies in), in the order an instance passes them.
    task_marks: tuple[tuple[str, str], ...]

    def observed(self) -> Mapping[str, Observed]:
        """name -> what the LAST poll() saw of it (no API call of its own)."""
        ...


@runtime_checkable
class CountsCalls(Protocol):
    def api_calls(self) -> dict[str, int]:
        """Calls made so far by kind; "list" counts the status polls' list calls only."""
        ...


def driver_labels(driver: object) -> dict[str, str]:
    """The driver's own names for marks and phases (none: the defaults, MARK_LABELS)."""
    labels = getattr(driver, "labels", None)
    return dict(labels) if isinstance(labels, Mapping) else {}

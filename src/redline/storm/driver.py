"""What a storm needs from a cloud: launch, one list call for all, delete, reach, clean up."""

from __future__ import annotations

from typing import Protocol

from redline.storm.model import InstanceSpec
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
        """Where to ping / ssh an instance, or None when it cannot be reached from here."""
        ...

    def pinger(self) -> Pinger | None: ...

    def ssh(self, spec: InstanceSpec) -> SshOutcome: ...

    def delete(self, spec: InstanceSpec) -> None: ...

    def cleanup(self) -> list[str]:
        """Remove everything of this run that is left; return what was removed. Never raises."""
        ...

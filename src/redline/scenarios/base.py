"""What every scenario (keystone.*, openstack.*, a scenario file) offers `run` and `capacity`."""

from __future__ import annotations

from typing import Any, Protocol

from redline.load.request import RequestTemplate, Target


class Scenario(Protocol):
    """A kind of request against a cloud, built once its credentials were checked."""

    @property
    def name(self) -> str:
        """e.g. keystone.issue, openstack.request, file:mix.yaml"""
        ...

    @property
    def url(self) -> str:
        """The base URL the requests go to (scheme, host, port; the path is in the template)."""
        ...

    @property
    def target(self) -> Target:
        """Where requests go, with the cloud's TLS settings (CA file, verify, client cert)."""
        ...

    def preflight(self) -> None:
        """Authenticate and try one request: a user error (bad credentials, wrong URL) fails here."""
        ...

    def request(self, needed_s: float) -> RequestTemplate:
        """The template for a run or probe of `needed_s` seconds; every token in it stays valid
        that long plus a margin (issued again when not)."""
        ...

    def describe(self) -> dict[str, Any]:
        """For run.json: what was measured, without a password, a secret or a token."""
        ...

    def secrets(self) -> list[str]:
        """Every secret the scenario holds (passwords, application-credential secrets, tokens),
        so that tests can grep results for leaks."""
        ...

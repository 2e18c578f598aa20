"""The global options of one run and what they lead to: the output mode, the profile, the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer

from reliquary_sdk.auth import ClientCredentials
from reliquary_sdk.cli.output import Output, usage
from reliquary_sdk.cli.profiles import ConfigFile, Target, resolve
from reliquary_sdk.client import Reliquary


@dataclass
class State:
    url: str | None = None
    profile: str | None = None
    json: bool = False
    output: Output = field(default_factory=Output)
    config: ConfigFile = field(default_factory=ConfigFile)
    _target: Target | None = None
    _clients: list[Reliquary] = field(default_factory=list)

    def target(self) -> Target:
        if self._target is None:
            self._target = resolve(self.config, url=self.url, profile_name=self.profile)
        return self._target

    def client(self, *, authenticated: bool = True, **options: Any) -> Reliquary:
        """A client for the resolved URL; with the resolved client's credentials unless told not to.
        ``options``: the client's own (``trusted_keys``, ``monitor``, ``falcon``)."""
        target = self.target()
        auth = None
        if authenticated:
            if not (target.client_id and target.client_secret):
                raise usage(
                    "no client credentials",
                    hint="use a profile with a client, or set RELIQUARY_CLIENT_ID and "
                    "RELIQUARY_CLIENT_SECRET",
                )
            auth = ClientCredentials(target.client_id, target.client_secret)
        client = Reliquary(target.url, auth=auth, **options)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:  # pragma: no cover - the root command always installs one
        raise RuntimeError("no CLI state")
    return found

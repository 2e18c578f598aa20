"""Everything a route needs, built once per cold start (``adapters/api_factory.py``): the caller's
identity, the capability functions, the access executions and the read-only views."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the cold start imports none of them: the runtime is built on the first request
    from reliquary.api.ports import Executions, Functions
    from reliquary.audit.reader import AuditReader
    from reliquary.config import Settings
    from reliquary.flow.chains import ChainStore
    from reliquary.identity.service import IdentityService
    from reliquary.vaults.catalog import MetadataReader


@dataclass(frozen=True)
class ApiRuntime:
    settings: Settings
    identity: IdentityService
    functions: Functions
    executions: Executions
    catalog: MetadataReader
    audit: AuditReader
    chains: ChainStore
    # A vault's context, trust and quorum policies as stored (JSON), by kind; None when unset.
    read_policy: Callable[[str, str, str], dict[str, Any] | None]
    # A short-lived download URL of an export the audit-append function wrote for the tenant.
    export_url: Callable[[str, str], str]
    clock: Callable[[], int]

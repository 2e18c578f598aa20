"""Item labels for ScoreTrust: an item's current live version and its sensitivity label, read-only from
the items table (GetItem/Query; no S3, no KMS). Items sealed without a label read as ``restricted``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from reliquary.adapters.dynamodb import DynamoDBItemRepository, TableConfig
from reliquary.errors import ItemExpiredError, ItemShreddedError
from reliquary.trust.facts import Sensitivity
from reliquary.trust.stage import ItemLabel


class DynamoDBItemLabels:
    def __init__(
        self,
        items: TableConfig,
        vaults: TableConfig,
        client: Any | None = None,
        *,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        self._items = DynamoDBItemRepository(items, vaults=vaults, client=client)
        self._clock = clock

    def label(self, tenant_id: str, vault_id: str, item_id: str) -> ItemLabel:
        record = self._items.get(tenant_id, vault_id, item_id)  # NotFoundError when there is none
        if record.expired(self._clock()):
            raise ItemExpiredError("the item expired and was crypto-shredded", item_id=item_id)
        if record.shredded:
            raise ItemShreddedError("the item was crypto-shredded", item_id=item_id)
        sensitivity: Sensitivity = getattr(record, "sensitivity", None) or "restricted"
        return ItemLabel(version=record.version, sensitivity=sensitivity)

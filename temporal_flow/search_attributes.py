"""Custom search attributes the renewal workflows carry (register them on any cluster used)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TLD = SearchAttributeKey.for_keyword("DualrunTld")
DOMAIN = SearchAttributeKey.for_keyword("DualrunDomain")
ENGINE_MODE = SearchAttributeKey.for_keyword("DualrunMode")
OPERATION_ID = SearchAttributeKey.for_keyword("DualrunOperationId")

ALL = (TLD, DOMAIN, ENGINE_MODE, OPERATION_ID)

# `temporal server start-dev` flags registering them on the dev server.
DEV_SERVER_ARGS: tuple[str, ...] = tuple(
    arg for key in ALL for arg in ("--search-attribute", f"{key.name}=Keyword")
)

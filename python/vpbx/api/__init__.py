"""The REST API (issue 5): `/api/v1` on the `vpbx serve` HTTP listener.

- `rbac`: the role → permission table and the pure checks (the one place RBAC lives);
- `scoping`: a caller's scope as query conditions; `queries`: the scoped reads;
- `auth`: bearer tokens and user login; `handlers`: the handlers and the route table;
- `openapi`: the OpenAPI 3.1 document generated from the route table;
- `app.build_api_app(ApiContext(...))`: the aiohttp sub-application.
"""

from .app import build_api_app
from .context import ApiContext
from .openapi import API_PREFIX, openapi_document

__all__ = ["API_PREFIX", "ApiContext", "build_api_app", "openapi_document"]

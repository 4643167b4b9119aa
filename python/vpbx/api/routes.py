"""The route table's types: every API route is declared once as a `Route` (method, path,
the permission it needs, its parameters and bodies); the aiohttp app and the OpenAPI
document are both generated from the same list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from .rbac import Need

if TYPE_CHECKING:
    from aiohttp import web

    from .context import Call

__all__ = ["Handler", "Param", "Route"]

Handler = Callable[["Call"], Awaitable["web.StreamResponse"]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["query", "path"]
    schema: dict[str, Any]
    description: str = ""

    @property
    def required(self) -> bool:
        return self.where == "path"


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. `auth` False: public (login, the OpenAPI document); `need` None with
    auth: any valid token. `path` is relative to the API root (/api/v1)."""

    method: Literal["GET", "POST"]
    path: str
    handler: Handler
    summary: str
    need: Need | None = None
    auth: bool = True
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    media: tuple[str, ...] = ("application/json",)
    errors: tuple[int, ...] = ()
    tag: str = "api"

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.lstrip("_")

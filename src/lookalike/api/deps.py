"""What routes take from a request: the running state, the token guard for catalog changes, the shopper, and the
search options (category, dedupe, filter, ...) from a form or a query string."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from fastapi import Cookie, Depends, Header, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from lookalike.api.admission import key_name, valid_key
from lookalike.api.state import AppState
from lookalike.filters import Filter
from lookalike.search import MAX_K, check_category

log = logging.getLogger(__name__)
bearer = HTTPBearer(auto_error=False, description="LOOKALIKE_API_TOKEN, for catalog changes")


async def get_state(request: Request) -> AppState:
    """The running state, first brought up to date with what another process saved (a cheap check unless it
    did). Dependencies here are ``async``: FastAPI would run plain ones in a thread, a hop per request."""
    state: AppState = request.app.state.lookalike
    state.engine.store.refresh()
    return state


State = Annotated[AppState, Depends(get_state)]


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def require_token(state: State, credentials: Credentials) -> None:
    """401 without a token, 403 with a wrong one (compared in constant time), 403 when writes are disabled."""
    expected = state.settings.api_token
    if expected is None or not expected.get_secret_value():
        raise HTTPException(status.HTTP_403_FORBIDDEN, "catalog changes are disabled: set LOOKALIKE_API_TOKEN")
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(credentials.credentials.encode(), expected.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")


async def write_access(request: Request, state: State, credentials: Credentials) -> None:
    """:func:`require_token`, and a log line naming the key (by fingerprint) of the change."""
    await require_token(state, credentials)
    if credentials is not None:
        log.info("%s %s by %s", request.method, request.url.path, key_name(credentials.credentials),
                 extra={"key": key_name(credentials.credentials)})


async def holds_token(state: State, credentials: Credentials) -> bool:
    """Whether the request carries the write token (for reads that show more to the operator); 403 for a wrong one,
    False for a read key."""
    if credentials is None:
        return False
    if valid_key(credentials.credentials, [t.get_secret_value() for t in state.settings.read_tokens]) is not None:
        return False
    await require_token(state, credentials)
    return True


WriteAccess = Depends(write_access)
Operator = Annotated[bool, Depends(holds_token)]


SHOPPER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SHOPPER_HEADER_HELP = "An opaque shopper id (no account needed)."
SHOPPER_COOKIE_HELP = "The dashboard's shopper id."


async def get_shopper(
    x_shopper_id: Annotated[str | None, Header(description=SHOPPER_HEADER_HELP)] = None,
    lookalike_shopper: Annotated[str | None, Cookie(description=SHOPPER_COOKIE_HELP)] = None,
) -> str | None:
    """The optional shopper id, from the ``X-Shopper-Id`` header or else the dashboard's cookie."""
    return checked_shopper(x_shopper_id or lookalike_shopper)


def shopper_of(request: Request) -> str | None:
    """:func:`get_shopper` for a route that reads its request itself (no dependency to resolve per request)."""
    return checked_shopper(request.headers.get("x-shopper-id") or request.cookies.get("lookalike_shopper"))


def checked_shopper(shopper: str | None) -> str | None:
    if shopper is None:
        return None
    if not SHOPPER_ID.fullmatch(shopper):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "a shopper id is 1-64 letters, digits, '.', '_' or '-'")
    return shopper


Shopper = Annotated[str | None, Depends(get_shopper)]
SHOPPER_PARAMETERS = [  # what get_shopper documents, for routes that call shopper_of
    {"name": "x-shopper-id", "in": "header", "required": False, "description": SHOPPER_HEADER_HELP,
     "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "X-Shopper-Id",
                "description": SHOPPER_HEADER_HELP}},
    {"name": "lookalike_shopper", "in": "cookie", "required": False, "description": SHOPPER_COOKIE_HELP,
     "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Lookalike Shopper",
                "description": SHOPPER_COOKIE_HELP}},
]


CATEGORY_HELP = "Only results of this category."
DEDUPE_HELP = "Collapse near-duplicates, so k different products."


@dataclass(frozen=True)
class Dedupe:
    """Whether near-duplicates are collapsed, and at which similarity (the calibrated threshold)."""

    asked: bool
    threshold: float | None


def dedupe_for(state: AppState, asked: bool) -> Dedupe:
    return Dedupe(asked, state.duplicate_threshold().threshold if asked else None)


async def _dedupe(state: AppState, asked: bool) -> Dedupe:
    """No thread hop unless asked; then off the event loop, since the first calibration takes a while."""
    return await run_in_threadpool(dedupe_for, state, asked) if asked else Dedupe(False, None)


async def query_category(state: State, category: Annotated[str | None, Query(description=CATEGORY_HELP)] = None,
                         ) -> str | None:
    """The category filter (None for none); 422 naming the known categories for one the catalog lacks."""
    return check_category(state.engine.store, category)


async def query_dedupe(state: State, dedupe: Annotated[bool, Query(description=DEDUPE_HELP)] = False) -> Dedupe:
    return await _dedupe(state, dedupe)


FILTER_HELP = ('Only items whose attributes meet every condition, as JSON: {"category": ["Dress", "Skirt"], '
               '"price": {"lte": 50}, "brand": ["A", "B"], "size": "M", "in_stock": true} (a value: equals; a list: '
               'any of; lt/lte/gt/gte: a range of a number or a date).')


@dataclass(frozen=True)
class Narrowing:
    """A request's filter and the ids of the items it matches (both None without one)."""

    filter: Filter | None
    allowed: np.ndarray | None


def narrowing(state: AppState, raw: dict[str, Any] | str | None) -> Narrowing:
    """The filter of a request; InvalidRequestError (422) names an unknown field or a value of the wrong kind."""
    parsed = state.filters.parse(raw)
    return Narrowing(parsed, state.filters.matching(parsed) if parsed is not None else None)


async def _narrowing(state: AppState, raw: str | None) -> Narrowing:
    """No thread hop without a filter; with one, off the event loop (its first use loads posting lists)."""
    return await run_in_threadpool(narrowing, state, raw) if raw else Narrowing(None, None)


async def query_filter(state: State, filter: Annotated[str | None, Query(description=FILTER_HELP)] = None,  # noqa: A002
                       ) -> Narrowing:
    return await _narrowing(state, filter)


NO_FILTER = Narrowing(None, None)
QueryFilter = Annotated[Narrowing, Depends(query_filter)]

GROUP_HELP = "`product`: one result per product (its best-matching image), so k results are k products."
QueryGroupBy = Annotated[Literal["product"] | None, Query(description=GROUP_HELP)]

QueryCategory = Annotated[str | None, Depends(query_category)]
QueryDedupe = Annotated[Dedupe, Depends(query_dedupe)]


class SearchOptions(BaseModel):
    """The options of a search by image: validated at once, where FastAPI's parameters cost a dependency each (the
    search route's form took half the event loop's time per search)."""

    model_config = ConfigDict(extra="ignore")

    k: int = Field(5, ge=1, le=MAX_K, description="How many results.")
    category: str | None = Field(None, description=CATEGORY_HELP)
    dedupe: bool = Field(False, description=DEDUPE_HELP)
    group_by: Literal["product"] | None = Field(None, description=GROUP_HELP)
    filter: str | None = Field(None, description=FILTER_HELP)
    facets: bool = Field(False, description="Add facet counts of the items the filter matches.")


class SearchForm(SearchOptions):
    """The search form's fields besides its files."""

    item_ids: str | None = Field(None, description="Catalog ids of example items, comma-separated.")
    query_id: int | None = Field(None, description="Search again with the query of this earlier search (another "
                                 "filter, say), instead of examples.")


Options = TypeVar("Options", bound=BaseModel)


def validated(model: type[Options], values: Mapping[str, Any], where: Literal["body", "query"]) -> Options:
    """A form's or a query string's values as ``model`` (an empty value counts as absent, as for FastAPI's own
    parameters); a 422 like FastAPI's for a bad one."""
    try:
        return model.model_validate({name: value for name, value in values.items() if value != ""})
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": (where, *error["loc"])} for error in exc.errors()]) from None

"""Bounded, derandomized fuzzing of every operation in the OpenAPI schema (schemathesis) against a real uvicorn
server: no 5xx ever, and every response has a documented status code, content type and body shape."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lookalike.api.main import create_app
from lookalike.config import Settings

from apiserver import TOKEN

FRAMING = {"content-length", "transfer-encoding", "connection", "host"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# The schema comes from the app itself (building it opens nothing); requests go to the live server.
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())  # type: ignore[call-arg]


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, live_url):
    if case.headers:  # the client frames the request: a fuzzed length is refused by uvicorn (400) before the app
        case.headers = {k: v for k, v in case.headers.items() if k.lower() not in FRAMING}
    case.call_and_validate(base_url=live_url, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS, timeout=60)

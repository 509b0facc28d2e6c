"""The OpenAPI document: served, built once, saying what the API does (test_fuzz holds the API to it)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from delivery.api.main import create_app
from delivery.api.segment import CallType, ErrorCode
from delivery.config import parse_config

DOC = Path(__file__).resolve().parents[3] / "docs" / "tracking-api.md"
TRACKING = [
    f"/v1/{call}" for call in ("identify", "track", "page", "screen", "group", "alias", "batch", "import")
]
ADMIN_TOKEN = "adm-openapi-token-0123456789-0123456789"
#: The short paths analytics.js and the mobile libraries post to.
SHORT = [f"/v1/{letter}" for letter in "itpsgab"]
SETTINGS = "/v1/projects/{writeKey}/settings"
ADMIN = [
    "/admin/status",
    "/admin/notifications",
    "/admin/destinations/{destination_id}/enable",
    "/admin/replay",
]
#: Sources and destinations changed live (routers/live_config.py; tests/delivery/test_live_config.py).
LIVE = [
    "/admin/destinations",
    "/admin/destinations/{destination_id}",
    "/admin/destinations/{destination_id}/disable",
    "/admin/sources",
    "/admin/sources/{source_id}",
    "/admin/sources/{source_id}/disable",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app() -> FastAPI:
    # The document does not depend on the queue: nothing here reaches it.
    config = parse_config({"engine": {"admin_token": ADMIN_TOKEN}})
    return create_app(config, queue=None)  # type: ignore[arg-type]


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine.test") as client:
        yield client


def operation(document: dict[str, Any], path: str, method: str | None = None) -> dict[str, Any]:
    """The operation of `path` with `method`, or its only one."""
    operations = document["paths"][path]
    if method is not None:
        return operations[method]
    [only] = operations.values()
    return only


@pytest.mark.anyio
async def test_the_document_and_its_page_are_served(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == app.openapi()
    assert response.json()["openapi"].startswith("3.1.")
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text


def test_the_document_is_built_once(app: FastAPI) -> None:
    assert app.openapi() is app.openapi()


def test_every_endpoint_is_in_the_document(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert set(paths) == {"/healthz", "/metrics", *TRACKING, *SHORT, SETTINGS, *ADMIN, *LIVE}
    for path in [*TRACKING, *SHORT]:
        assert set(paths[path]) == {"post", "options"}, path
    assert set(paths[SETTINGS]) == {"get"}


@pytest.mark.parametrize("path", TRACKING + SHORT)
def test_a_tracking_endpoint_takes_a_json_body_and_the_write_key(app: FastAPI, path: str) -> None:
    document = app.openapi()
    tracking = operation(document, path, "post")
    assert tracking["security"] == [{"writeKey": []}]
    assert document["components"]["securitySchemes"]["writeKey"] == {
        "type": "http",
        "scheme": "basic",
        "description": document["components"]["securitySchemes"]["writeKey"]["description"],
    }
    body = tracking["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/json"}
    assert set(tracking["responses"]) == {"200", "400", "401", "403", "413", "415", "503"}
    assert "Access-Control-Allow-Origin" in tracking["responses"]["200"]["headers"]


@pytest.mark.parametrize(
    ("short", "long"), [(f"/v1/{call[0]}", f"/v1/{call}") for call in CallType] + [("/v1/b", "/v1/batch")]
)
def test_a_short_path_is_documented_as_its_call(app: FastAPI, short: str, long: str) -> None:
    document = app.openapi()
    short_post, long_post = operation(document, short, "post"), operation(document, long, "post")
    assert short_post["requestBody"] == long_post["requestBody"]
    assert short_post["responses"] == long_post["responses"]
    assert short_post["operationId"] == long_post["operationId"] + "_short"
    assert f"`{long}`" in short_post["description"]


@pytest.mark.parametrize("path", TRACKING + SHORT)
def test_a_tracking_endpoint_answers_preflights(app: FastAPI, path: str) -> None:
    preflight = operation(app.openapi(), path, "options")
    assert "security" not in preflight  # browsers send no credentials with a preflight
    assert set(preflight["responses"]) == {"204", "403"}
    assert {parameter["name"] for parameter in preflight["parameters"]} == {
        "Origin",
        "Access-Control-Request-Method",
        "Access-Control-Request-Headers",
    }
    codes = preflight["responses"]["403"]["content"]["application/json"]["schema"]["properties"]["code"]
    assert codes["enum"] == ["origin_not_allowed"]


def test_the_source_settings_are_documented(app: FastAPI) -> None:
    document = app.openapi()
    settings = operation(document, SETTINGS, "get")
    assert "security" not in settings  # the write key is the path
    [key] = settings["parameters"]
    assert (key["name"], key["in"], key["required"]) == ("writeKey", "path", True)
    assert set(settings["responses"]) == {"200", "400", "401", "403"}
    schema = settings["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SourceSettings"}
    assert document["components"]["schemas"]["SourceSettings"]["required"] == ["integrations", "metrics"]


@pytest.mark.parametrize("path", ADMIN)
def test_an_admin_endpoint_takes_the_admin_token(app: FastAPI, path: str) -> None:
    document = app.openapi()
    admin = operation(document, path)
    assert admin["security"] == [{"adminToken": []}]
    assert document["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    assert admin["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_no_operation_documents_fastapis_422(app: FastAPI) -> None:
    # Validation errors are answered 400 `invalid_request` (`delivery.api.main`).
    document = app.openapi()
    for path_item in document["paths"].values():
        for answer in path_item.values():
            # A 422 documented is a route's own (`invalid_config` of the live config), never FastAPI's.
            assert "HTTPValidationError" not in str(answer["responses"].get("422", ""))
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_document_and_the_docs_give_each_error_code_the_same_status(app: FastAPI) -> None:
    match = re.search(r"<!-- test: error-codes -->\n((?:\|.*\n)+)", DOC.read_text())
    assert match, "docs/tracking-api.md lost its error-code table"
    documented = {
        code: int(status) for status, code in re.findall(r"^\| (\d{3}) \| `(\w+)` \|", match[1], re.M)
    }
    responses = operation(app.openapi(), "/v1/track", "post")["responses"]
    in_document = {
        code: int(status)
        for status, answer in responses.items()
        if status != "200"
        for code in answer["content"]["application/json"]["schema"]["properties"]["code"]["enum"]
    }
    assert in_document == documented
    assert set(in_document) == set(ErrorCode)


@pytest.mark.anyio
@pytest.mark.parametrize(("destination", "code"), [("nope", "unknown_destination"), ("a%2Fb", "not_found")])
async def test_an_unknown_destination_is_a_documented_404(
    app: FastAPI, client: httpx.AsyncClient, destination: str, code: str
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = await client.post(f"/admin/destinations/{destination}/enable", headers=headers)
    assert (response.status_code, response.json()["code"]) == (404, code)
    documented = operation(app.openapi(), "/admin/destinations/{destination_id}/enable")["responses"]["404"]
    assert code in documented["content"]["application/json"]["schema"]["properties"]["code"]["enum"]

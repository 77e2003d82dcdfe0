"""Every JSON-body operation in the OpenAPI spec, sent bodies no client should send: a clear 4xx, never a 500."""

import json
import uuid

import pytest

from tests.helpers import assert_error

BODY_METHODS = ("post", "put", "patch")
SURROGATE = "\ud800"  # a lone surrogate: JSON can say it, no database can store it
NUL = "\x00"  # PostgreSQL text cannot hold it
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def operator(api):
    """As an operator every role check passes, so the bodies reach the parsers and services behind them."""
    return api.as_user("sweep-operator", roles=("operator",))


def _json_operations(client) -> list[tuple[str, str, dict]]:
    spec = client.get("/api/openapi.json").get_json()
    found = []
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            if method in BODY_METHODS and "application/json" in operation.get("requestBody", {}).get("content", {}):
                parameters = item.get("parameters", []) + operation.get("parameters", [])
                path = template
                for parameter in parameters:
                    if parameter["in"] == "path":
                        path = path.replace(
                            "{" + parameter["name"] + "}", str(_example(spec, parameter["schema"], "x"))
                        )
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                found.append((method, path, _example(spec, schema, "text")))
    assert len(found) > 30, "the spec walk found too few operations"
    return found


def _example(spec: dict, schema: dict, text: str):
    """A body the schema describes, with `text` in every free-text string (so it reaches the fields)."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        return {
            name: _example(spec, sub, text)
            for name, sub in schema.get("properties", {}).items()
            if not sub.get("readOnly")
        }
    if kind == "array":
        return [_example(spec, schema.get("items", {}), text)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "string" and schema.get("format") == "date-time":
        return "2030-01-01T00:00:00+00:00"
    if kind == "string" and schema.get("format") in ("date", "uri", "url", "email"):
        return {"date": "2030-01-01", "email": "a@example.com"}.get(schema["format"], "https://example.com/")
    return text


def _send(operator, method: str, path: str, data: bytes):
    headers = {"Authorization": f"Bearer {operator.token}", "Idempotency-Key": uuid.uuid4().hex}
    return operator.client.open(
        path, method=method.upper(), data=data, content_type="application/json", headers=headers
    )


def _sweep(operator, body_of) -> list[str]:
    """Send each operation its bad body; return what was not refused with a 4xx in the envelope."""
    failures = []
    for method, path, example in _json_operations(operator.client):
        response = _send(operator, method, path, body_of(example))
        body = response.get_json(silent=True)
        if not 400 <= response.status_code < 500 or set(body or {}) != {"code", "status", "message", "errors"}:
            failures.append(f"{method.upper()} {path}: {response.status_code} {str(body)[:200]}")
    return failures


def _assert_refused(failures: list[str]) -> None:
    assert not failures, "\n".join(["not refused:"] + failures)


def _with_text(example, text: str):
    """The example with `text` appended to every string; one with no string gets it in an extra key."""
    marked = _appended(example, text)
    return marked if marked != example else {"note" + text: text}


def _appended(value, text: str):
    if isinstance(value, str):
        return value + text
    if isinstance(value, list):
        return [_appended(v, text) for v in value]
    if isinstance(value, dict):
        return {k: _appended(v, text) for k, v in value.items()}
    return value


def test_deeply_nested_bodies_are_refused(operator):
    _assert_refused(_sweep(operator, lambda example: DEEP))


def test_a_lone_surrogate_in_any_string_is_refused(operator):
    _assert_refused(_sweep(operator, lambda example: json.dumps(_with_text(example, SURROGATE)).encode()))


def test_a_nul_character_in_any_string_is_refused(operator):
    _assert_refused(_sweep(operator, lambda example: json.dumps(_with_text(example, NUL)).encode()))


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b'"text"', b"1", b"null", b"true"])
def test_a_body_that_is_not_an_object_is_refused(operator, body):
    _assert_refused(_sweep(operator, lambda example: body))


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_nesting_is_bounded_at_64_levels(client):
    inside = f'{{"code": "sandbox:x", "extra": {_nested(63)}}}'  # the body's object is the 64th level
    assert_error(
        client.post("/api/v1/auth/login", data=inside, content_type="application/json"), 422, "validation_error"
    )
    past = f'{{"code": "sandbox:x", "extra": {_nested(64)}}}'
    body = assert_error(
        client.post("/api/v1/auth/login", data=past, content_type="application/json"), 400, "json_too_deep"
    )
    assert "64" in body["message"]
    many = "[" + ",".join(["[]"] * 500) + "]"  # many brackets, little depth
    assert_error(client.post("/api/v1/auth/login", data=many, content_type="application/json"), 422, "validation_error")


def test_unstorable_text_is_refused_by_field_and_pairs_or_escaped_backslashes_are_not(api):
    mom = api.as_user("mom")
    body = assert_error(mom.patch("/api/v1/me", json={"nickname": "妈妈\ud800"}), 422, "validation_error")
    assert body["errors"] == {"nickname": ["NUL characters and lone surrogates are not allowed."]}
    nested = assert_error(mom.patch("/api/v1/me", json={"a": [{"b": "\udc00"}], "c\x00": 1}), 422, "validation_error")
    assert nested["errors"] == {
        "a": {"0": {"b": ["NUL characters and lone surrogates are not allowed."]}},
        "c\x00": ["NUL characters and lone surrogates are not allowed."],
    }
    for fine in ("妈妈\U0001f600", "\\ud800 \\u0000"):  # a surrogate pair; escapes spelled out as text
        response = mom.patch("/api/v1/me", json={"nickname": fine})
        assert response.status_code == 200 and response.get_json()["nickname"] == fine, response.get_json()

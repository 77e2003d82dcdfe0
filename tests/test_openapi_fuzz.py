"""schemathesis over the whole OpenAPI spec: whatever the schema allows must never produce a 5xx."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.helpers import login

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))


@pytest.fixture
def web_schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


schema = schemathesis.pytest.from_fixture("web_schema")


@pytest.fixture
def operator_token(client):
    from app.accounts import service

    user = service.ensure_user(openid="fuzz-operator", nickname="fuzz")
    service.grant_role(user_id=user.id, role="operator", granted_by_id=None)
    return login(client, "fuzz-operator").token


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors_anywhere(case, operator_token):
    """As an operator (every role check passes), so the fuzzing reaches past authentication."""
    response = case.call(headers={"Authorization": f"Bearer {operator_token}"})
    case.validate_response(response, checks=[not_a_server_error])

from app.core.access import rule_of
from tests.helpers import assert_error


def test_every_route_declares_who_may_call_it(app):
    missing = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule_of(view) is None:
            missing.append(f"{rule.rule} ({rule.endpoint})")
    assert not missing, "routes without an access rule: " + ", ".join(missing)


def test_operator_grants_and_revokes_roles(api):
    operator = api.as_user("op", roles=("operator",))
    alice = api.as_user("alice")
    granted = operator.post(f"/api/v1/admin/users/{alice.user['id']}/roles/host").get_json()
    assert granted["user"]["roles"] == ["host", "mom"]
    again = operator.post(f"/api/v1/admin/users/{alice.user['id']}/roles/host").get_json()
    assert again["user"]["roles"] == ["host", "mom"]
    assert alice.get("/api/v1/me").get_json()["roles"] == ["host", "mom"]
    revoked = operator.delete(f"/api/v1/admin/users/{alice.user['id']}/roles/host").get_json()
    assert revoked["user"]["roles"] == ["mom"]


def test_only_operators_manage_roles(api):
    host = api.as_user("host", roles=("host",))
    alice = api.as_user("alice")
    body = assert_error(host.post(f"/api/v1/admin/users/{alice.user['id']}/roles/operator"), 403, "role_required")
    assert body["errors"]["required_roles"] == ["operator"]
    assert_error(alice.post(f"/api/v1/admin/users/{host.user['id']}/roles/host"), 403, "role_required")
    assert_error(api.post(f"/api/v1/admin/users/{host.user['id']}/roles/host"), 401, "unauthenticated")


def test_role_changes_validate(api):
    operator = api.as_user("op", roles=("operator",))
    assert_error(operator.post("/api/v1/admin/users/999999/roles/host"), 404, "user_not_found")
    assert_error(operator.post(f"/api/v1/admin/users/{operator.user['id']}/roles/mom"), 422, "role_not_grantable")
    assert_error(operator.post(f"/api/v1/admin/users/{operator.user['id']}/roles/king"), 422, "role_not_grantable")
    assert_error(
        operator.delete(f"/api/v1/admin/users/{operator.user['id']}/roles/operator"), 409, "cannot_revoke_own_operator"
    )


def test_grant_role_from_the_command_line(app, api):
    alice = api.as_user("alice")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "grant-role", "alice", "partner"])
    assert result.exit_code == 0, result.output
    assert "partner" in result.output
    assert alice.get("/api/v1/me").get_json()["roles"] == ["mom", "partner"]
    result = runner.invoke(args=["users", "revoke-role", str(alice.user["id"]), "partner"])
    assert result.exit_code == 0 and alice.get("/api/v1/me").get_json()["roles"] == ["mom"]
    failed = runner.invoke(args=["users", "grant-role", "nobody", "host"])
    assert failed.exit_code != 0 and "no user matches" in failed.output
    failed = runner.invoke(args=["users", "grant-role", "alice", "queen"])
    assert failed.exit_code != 0 and "role_not_grantable" in failed.output


def test_no_two_views_claim_the_same_route(app):
    seen: dict[tuple[str, str], str] = {}
    clashes = []
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            other = seen.setdefault((rule.rule, method), rule.endpoint)
            if other != rule.endpoint:
                clashes.append(f"{method} {rule.rule}: {other} and {rule.endpoint}")
    assert not clashes, clashes

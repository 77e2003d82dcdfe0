"""A thin client that talks to the API as the mini-program does."""

from typing import Any

from flask.testing import FlaskClient


class ApiClient:
    def __init__(self, client: FlaskClient, token: str | None = None, user: dict | None = None):
        self.client = client
        self.token = token
        self.user = user

    def _headers(self, headers: dict | None) -> dict:
        merged = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        merged.update(headers or {})
        return merged

    def get(self, path: str, **kwargs: Any):
        return self.client.get(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any):
        return self.client.post(path, json=json, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any):
        return self.client.patch(path, json=json, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any):
        return self.client.put(path, json=json, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def delete(self, path: str, **kwargs: Any):
        return self.client.delete(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def as_user(self, name: str, invite_code: str | None = None, roles: tuple[str, ...] = ()) -> "ApiClient":
        """Log in as sandbox user `name` (granting `roles` directly in the database first)."""
        if roles:
            from app.accounts import service

            user = service.ensure_user(openid=name, nickname=name)
            for role in roles:
                service.grant_role(user_id=user.id, role=role, granted_by_id=None)
        return login(self.client, name, invite_code)


def login(client: FlaskClient, name: str, invite_code: str | None = None) -> ApiClient:
    body = {"code": f"sandbox:{name}"}
    if invite_code:
        body["invite_code"] = invite_code
    response = client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    return ApiClient(client, data["token"], data["user"])


def assert_error(response, status: int, code: str) -> dict:
    """Assert the response is the error envelope with this status and code."""
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"code", "status", "message", "errors"}, body
    assert body["status"] == status and body["code"] == code, body
    assert body["message"], body
    return body

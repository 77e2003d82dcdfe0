def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_login(api):
    alice = api.as_user("alice")
    assert alice.get("/api/v1/me").get_json()["id"] == alice.user["id"]

"""Channel credentials: validated per channel and encrypted at rest with Fernet (key from DATA_ENCRYPTION_KEY)."""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

from app.core.errors import Invalid

# Which credential fields each channel needs (all are secrets: none is ever returned by the API).
REQUIRED_FIELDS = {
    "wecom_webhook": ("webhook_key",),
    "wecom_customer_group": ("corp_id", "sender", "chat_id"),
    "sandbox": (),
}


def _fernet() -> Fernet:
    cached = current_app.extensions.get("groups_fernet")
    if cached is None:
        secret = current_app.config["DATA_ENCRYPTION_KEY"].encode()
        cached = Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret).digest()))
        current_app.extensions["groups_fernet"] = cached
    return cached


def validate(channel: str, credentials: dict[str, str] | None) -> dict[str, str]:
    """Keep exactly the fields the channel needs, or fail with 422 naming the missing ones."""
    credentials = credentials or {}
    needed = REQUIRED_FIELDS[channel]
    missing = [f for f in needed if not str(credentials.get(f) or "").strip()]
    if missing:
        raise Invalid(
            f"The {channel} channel needs credentials: {', '.join(needed)}.",
            code="credentials_missing",
            errors={"credentials": {f: ["Missing data for required field."] for f in missing}},
        )
    clean = {f: str(credentials[f]).strip() for f in needed}
    if channel == "wecom_customer_group" and clean["corp_id"] != current_app.config["WECOM_CORP_ID"]:
        raise Invalid(
            "Only groups of the platform's WeCom corp can be posted into.",
            code="wecom_corp_unknown",
            errors={"credentials": {"corp_id": ["Unknown corp."]}},
        )
    return clean


def encrypt(credentials: dict[str, str]) -> str:
    return _fernet().encrypt(json.dumps(credentials, sort_keys=True).encode()).decode() if credentials else ""


def decrypt(token: str) -> dict[str, str]:
    """The clear credentials (for the delivery workers only)."""
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise RuntimeError("group credentials cannot be decrypted: DATA_ENCRYPTION_KEY changed?") from exc

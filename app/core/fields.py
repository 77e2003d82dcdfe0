"""Schema fields several domains' request schemas share: ids, amounts in fen, bounded text."""

from marshmallow import fields, validate

from app.core.http import MAX_ID

MAX_FEN = 10**10  # 100 million yuan: far above any coupon or order line, far below any integer limit
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="Text may not contain NUL characters.")


def text(max_length: int, **kwargs) -> fields.String:
    """Text of at most `max_length` characters, without NUL."""
    return fields.String(validate=[validate.Length(max=max_length), NO_NUL], **kwargs)


def fen(**kwargs) -> fields.Integer:
    """An amount in fen, 0 to MAX_FEN."""
    return fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_FEN), **kwargs)


def ident(strict: bool = True, **kwargs) -> fields.Integer:
    """A row id (1 to the largest BIGINT)."""
    return fields.Integer(strict=strict, validate=validate.Range(min=1, max=MAX_ID), **kwargs)

"""Cursor (keyset) pagination: opaque cursors that stay stable while rows are added."""

import base64
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import ColumnElement, Select, literal, tuple_

from app.core.errors import Invalid


class PageArgsSchema(Schema):
    cursor = fields.String(load_default=None, metadata={"description": "The next_cursor of the previous page."})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class PageSchema(Schema):
    next_cursor = fields.String(allow_none=True)


def compact_json(value: Any) -> str:
    """JSON text without spaces, non-ASCII kept as it is (what hand-rendered pages and answers are made of)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def page_json(items: list[str], next_cursor: str | None) -> str:
    """A page `{"items": [...], "next_cursor": ...}` of items already rendered as JSON text.

    For hot reads whose items come out of the database as JSON (a schema dump would cost more than their
    SQL); the view's response schema still documents the shape.
    """
    return f'{{"items":[{",".join(items)}],"next_cursor":{json.dumps(next_cursor)}}}'


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError
        values = []
        for value, kind in zip(raw, kinds):
            if kind is datetime:
                # Only what encode_cursor writes: aware and in UTC (a naive or out-of-range time is a 500 when bound).
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise ValueError
                values.append(moment.astimezone(UTC))
            elif (
                isinstance(value, kind)
                and not isinstance(value, bool)
                and (kind is not int or -(2**63) <= value < 2**63)
            ):
                values.append(value)
            else:
                raise ValueError
        return values
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError):
        raise Invalid(
            "The cursor is not one this API issued.", code="invalid_cursor", errors={"cursor": ["Invalid cursor."]}
        ) from None


def after_cursor(columns: Sequence[Any], values: Sequence[Any], *, descending: bool) -> ColumnElement[bool]:
    """Rows strictly beyond `values` in the order of `columns` (all one direction).

    One row-value comparison, `(a, b) < (x, y)`, which PostgreSQL answers as a range of a matching index
    (the spelled-out `a < x OR (a = x AND b < y)` is only a filter there, so deep pages scanned every row before).
    """
    row = tuple_(*columns)
    bound = tuple_(*[literal(value, column.type) for column, value in zip(columns, values)])
    return row < bound if descending else row > bound


def keyset_page(
    stmt: Select,
    *,
    columns: Sequence[Any],
    kinds: Sequence[type],
    cursor: str | None,
    limit: int,
    key_of: Callable[[Any], Sequence[Any]],
    descending: bool = True,
    session,
) -> tuple[list[Any], str | None]:
    """Return one page of `stmt` ordered by `columns` (a unique key) and the cursor for the next page."""
    if cursor:
        stmt = stmt.where(after_cursor(columns, decode_cursor(cursor, kinds), descending=descending))
    order = [c.desc() if descending else c.asc() for c in columns]
    stmt = stmt.order_by(*order).limit(limit + 1)
    rows = list(session.execute(stmt).scalars() if _single_entity(stmt) else session.execute(stmt))
    next_cursor = encode_cursor(key_of(rows[limit - 1])) if len(rows) > limit else None
    return rows[:limit], next_cursor


def _single_entity(stmt: Select) -> bool:
    return len(stmt.column_descriptions) == 1 and stmt.column_descriptions[0].get("entity") is not None

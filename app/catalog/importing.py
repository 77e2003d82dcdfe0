"""Union feed import: JSON lines or CSV, upserted by (source, external id); bad rows reported, good rows kept."""

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from marshmallow import ValidationError
from sqlalchemy import select

from app.catalog import service as catalog
from app.catalog.models import Category, Product
from app.catalog.schemas import FeedRowSchema
from app.core.clock import now_utc
from app.core.db import after_commit, db, use_case

BATCH_SIZE = 500
INT_FIELDS = ("price_fen", "commission_rate_bp", "category_id")
# ASCII digits only: str.isdigit() also passes "²", which int() refuses.
INTEGER = re.compile(r"-?[0-9]+")
BOOL_FIELDS = {"is_active", "is_breastmilk_substitute"}
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "y"}, {"0", "false", "no", "n", ""}


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, object]] = field(default_factory=list)


def _csv_value(name: str, value: str):
    """CSV holds only text: turn it into what the schema expects, leaving the schema to judge it."""
    value = value.strip()
    if name in INT_FIELDS:
        if value == "":
            return None
        return int(value) if INTEGER.fullmatch(value) else value
    if name in BOOL_FIELDS:
        lowered = value.lower()
        return True if lowered in TRUE_WORDS else False if lowered in FALSE_WORDS else value
    if name == "images":
        return [part.strip() for part in value.split("|") if part.strip()]
    if value == "" and name in {"category", "link_url", "miniprogram_path", "union_coupon_url"}:
        return None
    return value


def read_rows(stream: io.TextIOBase, fmt: str) -> Iterator[tuple[int, object]]:
    """Yield (line number, raw row) pairs; an unparsable JSON line yields its error text instead of a dict."""
    if fmt == "csv":
        reader = csv.DictReader(stream)
        for row in reader:
            yield reader.line_num, {k: _csv_value(k, v or "") for k, v in row.items() if k is not None}
        return
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except (ValueError, RecursionError) as exc:  # nested past the decoder's limit: a bad line too
            yield number, f"not valid JSON: {exc}"


def _category_ids(names: set[str]) -> dict[str, int]:
    found = (
        {c.name: c.id for c in db.session.scalars(select(Category).where(Category.name.in_(names)))} if names else {}
    )
    for name in sorted(names - set(found)):
        category = Category(name=name, created_at=now_utc())
        db.session.add(category)
        db.session.flush()
        found[name] = category.id
    return found


def _upsert(source: str, rows: list[tuple[dict, set[str]]], report: ImportReport) -> None:
    latest = {row["external_id"]: (row, sent) for row, sent in rows}  # an id listed twice: the last row wins
    categories = _category_ids({r["category"] for r, _ in latest.values() if r.get("category")})
    existing = {
        p.external_id: p
        for p in db.session.scalars(select(Product).where(Product.source == source, Product.external_id.in_(latest)))
    }
    now = now_utc()
    for external_id, (row, row_fields) in latest.items():
        values = {k: v for k, v in row.items() if k not in {"external_id", "category"}}
        sent = row_fields | {"category_id"} if row.get("category") else row_fields
        if row.get("category"):
            values["category_id"] = categories[row["category"]]
        product = existing.get(external_id)
        if product is None:
            db.session.add(Product(source=source, external_id=external_id, created_at=now, updated_at=now, **values))
            report.created += 1
        else:
            # An update changes only the columns the row carries; a feed omitting a column keeps its value.
            for name, value in values.items():
                if name in sent:
                    setattr(product, name, value)
            product.updated_at = now
            report.updated += 1
    after_commit(catalog.catalog_changed)


def import_feed(
    *, rows: Iterable[tuple[int, object]], source: str, on_row: Callable[[], None] = lambda: None
) -> ImportReport:
    """Validate each row, upsert the good ones in batches, and report the bad ones by line number.

    Each batch is a use case of its own (the import's edge is the CLI command): a failure loses only its batch.
    """
    schema = FeedRowSchema()
    report = ImportReport()
    batch: list[tuple[dict, set[str]]] = []
    known_categories = {c.id for c in db.session.scalars(select(Category))}
    for number, raw in rows:
        on_row()
        if not isinstance(raw, dict):
            report.errors.append((number, raw if isinstance(raw, str) else "a row must be an object"))
            continue
        try:
            row = schema.load(raw)
        except ValidationError as exc:
            report.errors.append((number, exc.messages))
            continue
        if row.get("category_id") is not None and row["category_id"] not in known_categories:
            report.errors.append((number, {"category_id": ["Unknown category."]}))
            continue
        batch.append((row, set(raw)))
        if len(batch) >= BATCH_SIZE:
            with use_case():
                _upsert(source, batch, report)
            batch = []
    if batch:
        with use_case():
            _upsert(source, batch, report)
    return report

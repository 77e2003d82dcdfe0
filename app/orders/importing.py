"""Statement files, ingested in batches: JSON lines (one order object a line, the webhook's `order`) or CSV.

CSV has one row per order line: the order's columns (external_id, status, version, event_at, paid_at,
completed_at, buyer_id, buyer_openid, tracking_code) repeated on each of its rows, then the line's
(line_id, product_id or product_external_id, quantity, paid_fen, refunded_fen). An order's rows are
consecutive. A bad row rejects its whole order (an event always carries the whole order) and is
reported by its line number; every other order is kept.
"""

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from queue import Full, Queue
from threading import Event, Thread
from typing import TextIO

from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from app.core.db import run_use_case
from app.core.errors import ApiError
from app.orders import flows, webhooks
from app.orders.events import OrderEventIn
from app.orders.schemas import OrderInSchema
from app.orders.webhooks import event_from

BATCH_SIZE = 5000
READ_AHEAD = 2  # batches validated ahead of the one being ingested
INGEST_ATTEMPTS = 3  # a batch losing a race to a concurrent writer of one of its orders runs again
ORDER_FIELDS = (
    "external_id",
    "status",
    "version",
    "event_at",
    "paid_at",
    "completed_at",
    "buyer_id",
    "buyer_openid",
    "tracking_code",
)
LINE_FIELDS = ("line_id", "product_id", "product_external_id", "quantity", "paid_fen", "refunded_fen")
INT_FIELDS = {"version", "buyer_id", "product_id", "quantity", "paid_fen", "refunded_fen"}
# ASCII digits only: str.isdigit() also passes "²", which int() refuses.
INTEGER = re.compile(r"-?[0-9]+")


@dataclass
class ImportReport:
    created: int = 0
    applied: int = 0
    stale: int = 0
    errors: list[tuple[int, object]] = field(default_factory=list)


@dataclass
class _Row:
    """One order read from the file: where it starts, its JSON object (or why it is unreadable), line numbers
    of its lines (CSV: one row each) so validation errors on a line point at that line's row."""

    number: int
    order: object
    line_numbers: list[int] = field(default_factory=list)


def _ingest(batch: list[tuple[int, OrderEventIn]], report: ImportReport) -> None:
    """Ingest one batch as a use case of its own (run again from the start if a concurrent writer got in first)."""
    try:
        results, problems = run_use_case(
            lambda: flows.import_events(events=[event for _, event in batch]),
            retry_on=(IntegrityError,),
            attempts=INGEST_ATTEMPTS,
        )
    except ApiError:
        if len(batch) == 1:
            raise
        # An unexpected refusal must not sink the neighbours: retry the batch row by row to find it.
        for item in batch:
            try:
                _ingest([item], report)
            except ApiError as exc:
                report.errors.append((item[0], _problem(exc)))
        return
    for index, exc in sorted(problems.items()):
        report.errors.append((batch[index][0], _problem(exc)))
    for result in results:
        if result is not None:
            setattr(report, result.outcome, getattr(report, result.outcome) + 1)


def _problem(exc: ApiError) -> dict:
    return {"code": exc.code, "message": exc.message, "errors": exc.errors}


def _invalid(row: _Row, messages: dict) -> list[tuple[int, object]]:
    """Schema errors; a CSV line's own errors go to its row, the order's to its first row."""
    lines = messages.get("lines") if isinstance(messages, dict) else None
    if not (isinstance(lines, dict) and row.line_numbers):
        return [(row.number, messages)]
    found = []
    for index, problem in sorted(lines.items(), key=lambda item: str(item[0])):
        at = row.line_numbers[index] if isinstance(index, int) and index < len(row.line_numbers) else row.number
        found.append((at, {"lines": problem}))
    rest = {k: v for k, v in messages.items() if k != "lines"}
    return found + ([(row.number, rest)] if rest else [])


@dataclass
class _Chunk:
    """Up to a batch of validated events, with the rows read for them and the errors met on the way."""

    rows_read: int = 0
    events: list[tuple[int, OrderEventIn]] = field(default_factory=list)
    errors: list[tuple[int, object]] = field(default_factory=list)


def _chunks(rows: Iterable[_Row], source: str, batch_size: int) -> Iterator[_Chunk]:
    schema = OrderInSchema()
    chunk = _Chunk()
    for row in rows:
        chunk.rows_read += max(1, len(row.line_numbers))
        if isinstance(row.order, str):
            chunk.errors.append((row.number, row.order))
            continue
        try:
            order = schema.load(row.order if isinstance(row.order, dict) else {})
        except ValidationError as exc:
            chunk.errors += _invalid(row, exc.messages)
            continue
        chunk.events.append((row.number, event_from(source=source, order=order, payload=row.order)))
        if len(chunk.events) >= batch_size:
            yield chunk
            chunk = _Chunk()
    if chunk.rows_read:
        yield chunk


def _read_ahead(chunks: Iterator[_Chunk]) -> Iterator[_Chunk]:
    """Read and validate the next batch in a thread while the caller ingests this one: parsing then overlaps
    the time spent waiting for the database. The reader stops when the caller does."""
    ready: Queue = Queue(maxsize=READ_AHEAD)
    stop = Event()

    def hand_over(item) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except Full:
                continue

    def read() -> None:
        try:
            for chunk in chunks:
                hand_over(chunk)
                if stop.is_set():
                    return
            hand_over(None)
        except BaseException as exc:  # handed to the caller, who raises it
            hand_over(exc)

    reader = Thread(target=read, name="statement-reader", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def import_rows(
    *, rows: Iterable[_Row], source: str, on_row: Callable[[], None] = lambda: None, batch_size: int = BATCH_SIZE
) -> ImportReport:
    """Validate each order, ingest the good ones in batches, and report the bad ones by line number.

    Raises Invalid (422) for a source name no union or merchant may have, before reading anything.
    """
    webhooks.check_source_name(name=source)
    report = ImportReport()
    for chunk in _read_ahead(_chunks(rows, source, batch_size)):
        for _ in range(chunk.rows_read):
            on_row()
        report.errors += chunk.errors
        if chunk.events:
            _ingest(chunk.events, report)
    report.errors.sort(key=lambda error: error[0])
    return report


def import_file(
    *,
    stream: TextIO,
    source: str,
    fmt: str = "jsonl",
    on_row: Callable[[], None] = lambda: None,
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Import a statement (`fmt` "jsonl" or "csv"): idempotent; bad orders reported by line number, good ones kept."""
    rows = read_csv(stream) if fmt == "csv" else read_jsonl(stream)
    return import_rows(rows=rows, source=source, on_row=on_row, batch_size=batch_size)


def read_jsonl(stream: TextIO) -> Iterator[_Row]:
    """One order a line; an unparsable line yields its error text instead of an object."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield _Row(number, json.loads(line))
        except (ValueError, RecursionError) as exc:  # nested past the decoder's limit: a bad line too
            yield _Row(number, f"not valid JSON: {exc}")


def _csv_value(name: str, value: str):
    """CSV holds only text: empty is absent, digits are numbers; anything else is left for the schema to judge."""
    value = value.strip()
    if value == "":
        return None
    if name in INT_FIELDS and INTEGER.fullmatch(value):
        return int(value)
    return value


def read_csv(stream: TextIO) -> Iterator[_Row]:
    """Group consecutive rows of one order (same external_id and version) into one order object."""
    reader = csv.DictReader(stream)
    unknown = sorted(set(reader.fieldnames or []) - set(ORDER_FIELDS) - set(LINE_FIELDS))
    if unknown:
        yield _Row(1, f"unknown columns: {', '.join(unknown)}")
        return
    current: _Row | None = None
    current_key, current_fields, seen = None, None, set()
    for record in reader:
        number = reader.line_num
        values = {k: _csv_value(k, v or "") for k, v in record.items() if k is not None}
        order_fields = {k: values.get(k) for k in ORDER_FIELDS}
        line = {k: values[k] for k in LINE_FIELDS if values.get(k) is not None}
        key = (order_fields["external_id"], order_fields["version"])
        if current is not None and key == current_key:
            if isinstance(current.order, str):
                continue
            if order_fields != current_fields:
                # The whole order is rejected, at the row that disagrees.
                current = _Row(number, f"order columns differ from line {current.number} of the same order")
                continue
            current.order["lines"].append(line)
            current.line_numbers.append(number)
            continue
        if current is not None:
            yield current
        current_key, current_fields = key, order_fields
        if key in seen:
            current = _Row(number, "the rows of one order must be consecutive")
            continue
        seen.add(key)
        current = _Row(number, {**{k: v for k, v in order_fields.items() if v is not None}, "lines": [line]}, [number])
    if current is not None:
        yield current

"""Statement files: JSON lines, one order object per line (the webhook's `order`), ingested in batches."""
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, TextIO

from marshmallow import ValidationError

from app.core.errors import ApiError
from app.orders import service
from app.orders.schemas import OrderInSchema
from app.orders.webhooks import event_from

BATCH_SIZE = 1000


@dataclass
class ImportReport:
    created: int = 0
    applied: int = 0
    stale: int = 0
    errors: list[tuple[int, object]] = field(default_factory=list)


def _ingest(batch: list[tuple[int, service.OrderEventIn]], report: ImportReport) -> None:
    try:
        results = service.ingest_events(events=[event for _, event in batch])
    except ApiError:
        if len(batch) == 1:
            raise
        # One bad row must not sink its neighbours: retry the batch row by row to find it.
        for item in batch:
            try:
                _ingest([item], report)
            except ApiError as exc:
                report.errors.append((item[0], {"code": exc.code, "message": exc.message, "errors": exc.errors}))
        return
    for result in results:
        setattr(report, result.outcome, getattr(report, result.outcome) + 1)


def import_file(*, stream: TextIO, source: str, on_row: Callable[[], None] = lambda: None,
                batch_size: int = BATCH_SIZE) -> ImportReport:
    """Validate each line, ingest the good ones in batches, and report the bad ones by line number."""
    schema = OrderInSchema()
    report = ImportReport()
    batch: list[tuple[int, service.OrderEventIn]] = []
    for number, line in _numbered(stream):
        on_row()
        try:
            raw = json.loads(line)
            order = schema.load(raw if isinstance(raw, dict) else {})
        except ValueError as exc:
            report.errors.append((number, f"not valid JSON: {exc}"))
            continue
        except ValidationError as exc:
            report.errors.append((number, exc.messages))
            continue
        batch.append((number, event_from(source=source, order=order, payload=raw)))
        if len(batch) >= batch_size:
            _ingest(batch, report)
            batch = []
    if batch:
        _ingest(batch, report)
    return report


def _numbered(stream: TextIO) -> Iterable[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line

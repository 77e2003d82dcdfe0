"""Settlement: pending commission becomes available once an order is completed and the holding period passed."""

from app.core.queue import enqueue
from app.orders import service as orders


def settle() -> int:
    """Settle every order that is due (an RQ job; idempotent, safe to run twice)."""
    return orders.settle_due()


def enqueue_settlement() -> None:
    """The clock's part: put one settlement run on the queue."""
    enqueue("default", settle)

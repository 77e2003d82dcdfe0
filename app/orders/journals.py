"""The journals an order produces: paid (pending shares), refund or clawback (pro-rata reversal), settlement."""

from app.affiliate.service import SHARES, reversed_share
from app.ledger.service import JournalDraft, LineDraft

# Who earns each share, by the attribution's column.
PEOPLE = {"level1": "level1_id", "level2": "level2_id", "host": "host_id", "content": "content_author_id"}


def paid_journal(*, order_id: int, attributions: list[dict]) -> JournalDraft:
    """The seller's commission owed to the platform, split into pending shares and platform revenue."""
    draft = JournalDraft(key=f"order:{order_id}:paid", kind="order_paid", order_id=order_id)
    for a in attributions:
        where = {"order_line_id": a["order_line_id"], "attribution_id": a["id"]}
        draft.lines.append(LineDraft(None, "commission_receivable", -a["seller_fen"], share="seller", **where))
        for share in SHARES:
            if a[PEOPLE[share]] is not None:
                draft.lines.append(LineDraft(a[PEOPLE[share]], "pending", a[f"{share}_fen"], share=share, **where))
        draft.lines.append(LineDraft(None, "platform_revenue", a["platform_fen"], share="platform", **where))
    return draft


def _reversed(a: dict, amount_field: str, refunded_fen: int) -> int:
    return reversed_share(share_fen=a[amount_field], paid_fen=a["base_fen"], refunded_fen=refunded_fen)


def refund_journal(
    *,
    order_id: int,
    version: int,
    attributions: list[dict],
    refunded_before: dict[int, int],
    refunded_after: dict[int, int],
    settled: bool,
) -> JournalDraft:
    """Reverse the same fraction of every share (level-2 included) as was refunded since the last event.

    Reversals are computed on the cumulative refund, so repeated partial refunds never drift from the
    pro-rata total. Before settlement they come out of pending; after it they claw back from available,
    which may go negative and then nets against later earnings.
    """
    kind = "clawback" if settled else "refund"
    draft = JournalDraft(key=f"order:{order_id}:refund:{version}", kind=kind, order_id=order_id)
    account = "available" if settled else "pending"
    for a in attributions:
        line_id = a["order_line_id"]
        before, after = refunded_before.get(line_id, 0), refunded_after.get(line_id, 0)
        if after <= before:
            continue
        where = {"order_line_id": line_id, "attribution_id": a["id"]}
        seller = _reversed(a, "seller_fen", after) - _reversed(a, "seller_fen", before)
        shares_total = 0
        for share in SHARES:
            if a[PEOPLE[share]] is None:
                continue
            delta = _reversed(a, f"{share}_fen", after) - _reversed(a, f"{share}_fen", before)
            shares_total += delta
            draft.lines.append(LineDraft(a[PEOPLE[share]], account, -delta, share=share, **where))
        draft.lines.append(LineDraft(None, "platform_revenue", -(seller - shares_total), share="platform", **where))
        draft.lines.append(LineDraft(None, "commission_receivable", seller, share="seller", **where))
    return draft


def settlement_journal(*, order_id: int, attributions: list[dict], refunded: dict[int, int]) -> JournalDraft:
    """Move what is left of every share after refunds from pending to available."""
    draft = JournalDraft(key=f"order:{order_id}:settle", kind="settlement", order_id=order_id)
    for a in attributions:
        where = {"order_line_id": a["order_line_id"], "attribution_id": a["id"]}
        for share in SHARES:
            person = a[PEOPLE[share]]
            if person is None:
                continue
            net = a[f"{share}_fen"] - _reversed(a, f"{share}_fen", refunded.get(a["order_line_id"], 0))
            draft.lines.append(LineDraft(person, "pending", -net, share=share, **where))
            draft.lines.append(LineDraft(person, "available", net, share=share, **where))
    return draft

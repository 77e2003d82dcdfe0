"""A hypothesis state machine over one paid order's refunds: asked, finished by WeChat any way, reported
by notification (replayed, early) or by the query job, in any order.

After every step: what the order shows refunded is exactly the sum of the refunds WeChat finished and we
applied, what it holds back is exactly the sum still processing, the two never pass what was paid, its
lines carry the refunded amount between them, its status follows from the amounts, and the affiliate
pipeline's copy of the order shows the same refunded amount (commission is reversed by what was refunded,
never by what was only asked).
"""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from app.accounts import service as accounts
from app.checkout import flows as checkout
from app.checkout import refunds
from app.checkout import sandbox as pay_sandbox
from app.checkout.models import CheckoutOrder, CheckoutOrderLine
from app.core import clock
from app.core.db import db, use_case
from app.core.errors import ApiError
from app.orders import service as orders
from tests.coupon_factories import make_product

PAYABLE = [7000, 3001]  # two lines, so every refund is spread over both
_runs = itertools.count()


def machine_for(app, client):
    class RefundMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            run = next(_runs)
            self.now = datetime(2027, 3, 1, tzinfo=UTC) + timedelta(days=30 * run)
            clock.freeze(self.now)
            buyer = accounts.ensure_user(openid=f"refund-buyer-{run}", nickname="b")
            lines = [{"product_id": make_product(price_fen=price).id, "quantity": 1} for price in PAYABLE]
            with use_case():
                placed = checkout.place_order(
                    user_id=buyer.id, lines=lines, coupon_id=None, share_code=None, client_ip="127.0.0.1"
                )
            self.order_id, self.out_trade_no = placed.order.id, placed.order.out_trade_no
            pay_sandbox.mark_paid(self.out_trade_no)
            with use_case():
                paid = checkout.handle_notification(xml=pay_sandbox.payment_notification(self.out_trade_no).encode())
            assert paid == "applied"
            self.payable = sum(PAYABLE)
            self.refunds: dict[str, dict] = {}  # out_refund_no → amount, ours (processing/succeeded/failed), wechat
            self.keys = itertools.count()

        def _processing(self) -> list[str]:
            return [no for no, r in self.refunds.items() if r["ours"] == "processing"]

        def _expect_settled(self, out_refund_no: str) -> None:
            refund = self.refunds[out_refund_no]
            if refund["ours"] == "processing" and refund["wechat"] != "PROCESSING":
                refund["ours"] = "succeeded" if refund["wechat"] == "SUCCESS" else "failed"

        @rule(amount=st.one_of(st.none(), st.integers(min_value=-5, max_value=10_500)))
        def ask(self, amount):
            held = sum(r["amount"] for r in self.refunds.values() if r["ours"] in ("processing", "succeeded"))
            left = self.payable - held
            try:
                with use_case():
                    record = refunds.refund(order_id=self.order_id, amount_fen=amount, reason="", requested_by_id=None)
            except ApiError as refused:
                succeeded = sum(r["amount"] for r in self.refunds.values() if r["ours"] == "succeeded")
                expected = (
                    "order_not_refundable"
                    if succeeded == self.payable
                    else "refund_in_progress"
                    if left < 1
                    else "refund_amount_invalid"
                )
                assert refused.code == expected, (refused.code, amount, left)
                return
            assert left >= 1 and record.amount_fen == (left if amount is None else amount)
            self.refunds[record.out_refund_no] = {
                "amount": record.amount_fen,
                "ours": "processing",
                "wechat": "PROCESSING",
            }

        @precondition(lambda self: any(r["wechat"] == "PROCESSING" for r in self.refunds.values()))
        @rule(
            data=st.data(),
            outcome=st.sampled_from(["SUCCESS", "SUCCESS", "REFUNDCLOSE", "CHANGE"]),
            report=st.sampled_from(["notification", "nothing"]),
        )
        def wechat_finishes(self, data, outcome, report):
            out_refund_no = data.draw(
                st.sampled_from(sorted(no for no, r in self.refunds.items() if r["wechat"] == "PROCESSING"))
            )
            pay_sandbox.settle_refund(out_refund_no, outcome)
            self.refunds[out_refund_no]["wechat"] = outcome
            if report == "notification":
                with use_case():
                    refunds.handle_refund_notification(xml=pay_sandbox.refund_notification(out_refund_no).encode())
                self._expect_settled(out_refund_no)

        @precondition(lambda self: self.refunds)
        @rule(data=st.data())
        def notification_replayed_or_early(self, data):
            out_refund_no = data.draw(st.sampled_from(sorted(self.refunds)))
            with use_case():
                refunds.handle_refund_notification(xml=pay_sandbox.refund_notification(out_refund_no).encode())
            self._expect_settled(out_refund_no)

        @rule()
        def query_job(self):
            self.now += timedelta(minutes=1)
            clock.freeze(self.now)
            refunds.sync_processing_refunds()
            for out_refund_no in list(self.refunds):
                self._expect_settled(out_refund_no)

        @invariant()
        def order_adds_up(self):
            db.session.expire_all()
            order = db.session.get(CheckoutOrder, self.order_id)
            succeeded = sum(r["amount"] for r in self.refunds.values() if r["ours"] == "succeeded")
            processing = sum(r["amount"] for r in self.refunds.values() if r["ours"] == "processing")
            assert (order.refunded_fen, order.refunding_fen) == (succeeded, processing)
            assert order.refunded_fen + order.refunding_fen <= order.payable_fen
            lines = db.session.scalars(
                select(CheckoutOrderLine).where(CheckoutOrderLine.order_id == self.order_id)
            ).all()
            assert sum(line.refunded_fen for line in lines) == order.refunded_fen
            assert all(0 <= line.refunded_fen <= line.paid_fen for line in lines)
            expected = "paid" if succeeded == 0 else "refunded" if succeeded == self.payable else "partially_refunded"
            assert order.status == expected
            mirrored, _ = orders.search_orders(
                source="own", external_id=self.out_trade_no, buyer_id=None, status=None, cursor=None, limit=1
            )
            assert sum(line.refunded_fen for line in orders.lines_of(order_id=mirrored[0].id)) == succeeded

        def teardown(self):
            clock.freeze(None)

    return RefundMachine


@pytest.mark.commits
def test_refund_state_machine(app, client):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        machine_for(app, client),
        settings=settings(
            max_examples=30, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )

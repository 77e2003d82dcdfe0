"""A claim burst, or a drain, run as a separate process, so a test can kill -9 it mid-flight.

Reads the stores and the template from the environment. BURST_ROLE=claims waits until the drain runs
(BURST_MARKER.ready), then claims through the gate for the given users from several threads and prints
`CLAIMED <user> <coupon>` for each grant: what a user would be told. BURST_ROLE=drain lands the claim
stream in small batches; from its second batch on it stops mid-batch (BURST_PAUSE=before_commit: rows
inserted, not committed; after_commit: committed, not acked), touches BURST_MARKER and waits there to
be killed.
"""

import os
import sys
import threading
import time
from pathlib import Path

from app import create_app
from app.core.db import db
from app.core.errors import ApiError
from app.coupons import claims
from app.coupons.flash import drain, gate


def _claims(app, template_id: int, users: list[int]) -> None:
    lock = threading.Lock()

    def work(mine: list[int]) -> None:
        with app.app_context():
            _work(mine)

    def _work(mine: list[int]) -> None:
        for user_id in mine:
            try:
                coupon_id = claims.claim_through_gate(
                    template_id=template_id, user_id=user_id, request_key=f"burst-{user_id}"
                ).coupon.id
            except ApiError:
                continue
            finally:
                db.session.remove()
            with lock:
                sys.stdout.write(f"CLAIMED {user_id} {coupon_id}\n")
                sys.stdout.flush()
            time.sleep(0.05)  # a drop that lasts long enough to be killed in the middle

    threads = [threading.Thread(target=work, args=(users[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _drain(pause: str, marker: Path) -> None:
    batches = []

    def stop_here():
        if len(batches) >= 2:
            marker.touch()
            time.sleep(60)

    if pause == "before_commit":
        insert = drain._insert

        def paused_insert(grants, templates):
            insert(grants, templates)
            batches.append(1)
            stop_here()

        drain._insert = paused_insert
    else:
        settle = gate.settle

        def paused_settle(entries, refused):
            batches.append(1)
            stop_here()
            return settle(entries, refused)

        gate.settle = paused_settle
    drain.BATCH = 5
    while True:
        drain.drain()
        db.session.remove()
        time.sleep(0.02)


def main() -> None:
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": os.environ["BURST_DATABASE_URI"],
            "REDIS_URL": os.environ["BURST_REDIS_URL"],
            "INSTANCE_PATH": os.environ["BURST_INSTANCE_PATH"],
            "SECRET_KEY": "burst",
            "COUPON_DRAIN_LOCK_SECONDS": 2,
        }
    )
    with app.app_context():
        if os.environ["BURST_ROLE"] == "claims":
            ready = Path(os.environ["BURST_MARKER"] + ".ready")
            while not ready.exists():  # the drop starts once the drain runs
                time.sleep(0.02)
            _claims(app, int(os.environ["BURST_TEMPLATE_ID"]), [int(u) for u in os.environ["BURST_USERS"].split(",")])
            sys.stdout.write("DONE\n")
            sys.stdout.flush()
        else:
            Path(os.environ["BURST_MARKER"] + ".ready").touch()
            _drain(os.environ["BURST_PAUSE"], Path(os.environ["BURST_MARKER"]))


if __name__ == "__main__":
    main()

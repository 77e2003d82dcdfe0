"""A claim burst run as a separate process, so a test can kill -9 it mid-flight.

Reads the stores and the template from the environment, claims for the given users from several
threads, and prints `CLAIMED <user> <coupon>` only after each commit: what a user would be told.
"""
import os
import sys
import threading
import time

from app import create_app
from app.core.db import db
from app.core.errors import ApiError
from app.coupons import claims


def main() -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": os.environ["BURST_DATABASE_URI"], "REDIS_URL": os.environ["BURST_REDIS_URL"],
                      "INSTANCE_PATH": os.environ["BURST_INSTANCE_PATH"], "SECRET_KEY": "burst"})
    template_id = int(os.environ["BURST_TEMPLATE_ID"])
    users = [int(u) for u in os.environ["BURST_USERS"].split(",")]
    insert = claims._insert_claim

    def slow_insert(*args, **kwargs):
        # Widen the window between the gate's grant and the commit, where a crash leaves a dead grant.
        time.sleep(0.01)
        return insert(*args, **kwargs)

    claims._insert_claim = slow_insert
    lock = threading.Lock()

    def work(mine: list[int]) -> None:
        with app.app_context():
            for user_id in mine:
                try:
                    coupon_id = claims.claim(template_id=template_id, user_id=user_id).id
                except ApiError:
                    continue
                finally:
                    db.session.remove()
                with lock:
                    sys.stdout.write(f"CLAIMED {user_id} {coupon_id}\n")
                    sys.stdout.flush()

    threads = [threading.Thread(target=work, args=(users[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stdout.write("DONE\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

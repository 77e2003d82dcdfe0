"""One transaction per use case, on both stores: a savepoint inside it commits only with it."""

import pytest
from sqlalchemy import func, select

from app.catalog.models import Category
from app.core.clock import now_utc
from app.core.db import db


def _categories() -> int:
    return db.session.scalar(select(func.count()).select_from(Category))


def test_a_use_case_whose_first_write_is_a_savepoint_still_rolls_back_whole(app):
    with app.app_context():
        with db.session.begin_nested():
            db.session.add(Category(name="奶粉", created_at=now_utc()))
        db.session.add(Category(name="纸尿裤", created_at=now_utc()))
        db.session.flush()
        db.session.rollback()
        assert _categories() == 0


def test_a_savepoint_rolled_back_alone_keeps_the_rest_of_the_use_case(app):
    with app.app_context():
        db.session.add(Category(name="绘本", created_at=now_utc()))
        db.session.flush()
        with pytest.raises(RuntimeError), db.session.begin_nested():
            db.session.add(Category(name="辅食", created_at=now_utc()))
            db.session.flush()
            raise RuntimeError("the nested step fails")
        with db.session.begin_nested():
            db.session.add(Category(name="玩具", created_at=now_utc()))
        db.session.commit()
        assert sorted(db.session.scalars(select(Category.name))) == ["玩具", "绘本"]

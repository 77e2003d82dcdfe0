import json
from datetime import UTC

import pytest
from sqlalchemy import select, update

from app.catalog import service as catalog
from app.catalog.models import Product
from app.core.db import db, is_postgres, reads_outside_transaction
from tests.affiliate_helpers import make_product
from tests.helpers import assert_error


def _titles(response):
    return [p["title"] for p in response.get_json()["items"]]


def test_search_finds_chinese_substring_and_filters_category(api, app):
    toys = catalog.create_category(name="玩具", parent_id=None)
    make_product(title="儿童电动牙刷 软毛", category_id=toys.id)
    make_product(title="婴儿湿巾 80抽")
    make_product(title="成人牙刷", is_active=False)
    assert _titles(api.get("/api/v1/products", query_string={"q": "牙刷"})) == ["儿童电动牙刷 软毛"]
    assert _titles(api.get("/api/v1/products", query_string={"category_id": toys.id})) == ["儿童电动牙刷 软毛"]
    assert _titles(api.get("/api/v1/products", query_string={"q": "100%_"})) == []


def test_search_matches_one_and_two_characters_case_and_merchant(api):
    make_product(title="儿童电动牙刷 Sonic", merchant="贝亲旗舰店")
    make_product(title="婴儿湿巾 80抽", merchant="Pigeon")
    make_product(title="牙膏", merchant="")
    search = lambda q: sorted(_titles(api.get("/api/v1/products", query_string={"q": q})))  # noqa: E731
    assert search("牙") == ["儿童电动牙刷 Sonic", "牙膏"]
    assert search("电动牙刷") == ["儿童电动牙刷 Sonic"]
    assert search("SONIC") == search("sonic") == search("刷 so") == ["儿童电动牙刷 Sonic"]
    assert search("旗舰") == ["儿童电动牙刷 Sonic"] and search("pige") == ["婴儿湿巾 80抽"]
    assert search("刷牙") == search("童 电") == search("80抽抽") == []
    # The hand-rendered search rows are exactly what the schema renders for one product.
    item = api.get("/api/v1/products", query_string={"q": "旗舰"}).get_json()["items"][0]
    assert item == {k: v for k, v in api.get(f"/api/v1/products/{item['id']}").get_json().items() if k != "my_earning"}


def test_search_tokens_follow_title_and_merchant(app):
    from app.catalog.tokens import keyword_tokens, search_tokens

    product = make_product(title="软毛 牙刷", merchant="A店")
    assert (
        product.search_tokens
        == search_tokens("软毛 牙刷", "A店")
        == sorted(["软", "毛", "软毛", "牙", "刷", "牙刷", "a", "店", "a店"])
    )
    catalog.update_product(product_id=product.id, changes={"title": "电动牙刷"})
    assert "电动" in product.search_tokens and "软毛" not in product.search_tokens
    assert keyword_tokens("Ab 牙") == ["ab", "牙"]
    assert len(keyword_tokens("一二三四五六七八九十零")) == 8


def test_keyword_pages_stay_exact_when_the_walk_falls_back_to_the_token_index(api, frozen_clock, monkeypatch):
    """Pages past a short walk of the sort order (then the GIN lookup on PostgreSQL) list every match once, in order."""
    from datetime import datetime, timedelta

    from app.catalog import search

    monkeypatch.setattr(search, "WALK_ROWS", 3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    expected = []
    for i in range(24):
        frozen_clock(start + timedelta(minutes=i % 5))  # ties on created_at: the id breaks them
        match = i % 4 == 0
        product = make_product(
            title=f"{'奶瓶' if match else '湿巾'} {i}",
            price_fen=1000 + (i * 7) % 5 * 100,
            commission_rate_bp=500 + i % 3 * 100,
            is_active=i != 8,
        )
        if match and i != 8:
            expected.append(product)
    keys = {
        "newest": (lambda p: (p.created_at, p.id), True),
        "price_asc": (lambda p: (p.price_fen, p.id), False),
        "price_desc": (lambda p: (p.price_fen, p.id), True),
        "commission": (lambda p: (p.commission_rate_bp, p.id), True),
    }
    for sort, (key, descending) in keys.items():
        seen, cursor = [], None
        while True:
            query = {"q": "奶瓶", "sort": sort, "limit": 2} | ({"cursor": cursor} if cursor else {})
            body = api.get("/api/v1/products", query_string=query).get_json()
            seen += [p["id"] for p in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert seen == [p.id for p in sorted(expected, key=key, reverse=descending)], sort


def test_search_pages_are_cached_until_a_product_changes(api, app, tmp_path):
    operator = api.as_user("op", roles=("operator",))
    bottle = make_product(title="玻璃奶瓶")
    assert _titles(api.get("/api/v1/products", query_string={"q": "奶瓶"})) == ["玻璃奶瓶"]
    db.session.execute(update(Product).where(Product.id == bottle.id).values(title="PPSU奶瓶"))  # behind the service
    db.session.commit()
    assert _titles(api.get("/api/v1/products", query_string={"q": "奶瓶"})) == ["玻璃奶瓶"]  # the cached page
    operator.patch(f"/api/v1/admin/products/{bottle.id}", json={"price_fen": 4900})
    assert _titles(api.get("/api/v1/products", query_string={"q": "奶瓶"})) == ["PPSU奶瓶"]
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        json.dumps(
            {"external_id": "n1", "title": "硅胶奶瓶", "price_fen": 100, "commission_rate_bp": 100}, ensure_ascii=False
        )
        + "\n",
        encoding="utf-8",
    )
    assert app.test_cli_runner().invoke(args=["catalog", "import", str(feed)]).exit_code == 0
    assert sorted(_titles(api.get("/api/v1/products", query_string={"q": "奶瓶"}))) == ["PPSU奶瓶", "硅胶奶瓶"]
    make_product(title="奶瓶刷")
    assert len(_titles(api.get("/api/v1/products", query_string={"q": "奶瓶"}))) == 3


def test_cached_search_pages_are_answered_by_exact_query_string_and_never_personal(api):
    """A page is stored under the query string that rendered it, only once it validated; it holds nothing of the
    caller, so a logged-in sharer's search fills the page anonymous callers get, while her earning stays on the
    uncached detail. The caller's token is still checked on a cached page."""
    bottle = make_product(title="玻璃奶瓶", price_fen=9999, commission_rate_bp=1500)
    mom = api.as_user("mom")
    mine = mom.get("/api/v1/products?q=%E5%A5%B6%E7%93%B6&limit=5")
    assert mine.status_code == 200 and "my_earning" not in mine.get_json()["items"][0]
    db.session.execute(update(Product).where(Product.id == bottle.id).values(title="PPSU奶瓶"))  # behind the service
    db.session.commit()
    assert api.get("/api/v1/products?q=%E5%A5%B6%E7%93%B6&limit=5").data == mine.data  # the stored bytes, as they are
    assert _titles(api.get("/api/v1/products?limit=5&q=%E5%A5%B6%E7%93%B6")) == ["PPSU奶瓶"]  # another query string
    assert api.get(f"/api/v1/products/{bottle.id}").get_json()["my_earning"] is None
    assert mom.get(f"/api/v1/products/{bottle.id}").get_json()["my_earning"]["level1_fen"] == 499
    assert_error(
        api.get("/api/v1/products?q=%E5%A5%B6%E7%93%B6&limit=5", headers={"Authorization": "Bearer nope"}),
        401,
        "invalid_token",
    )
    for _ in range(2):  # a query that fails validation is never stored
        assert_error(api.get("/api/v1/products?q=%E5%A5%B6%E7%93%B6&limit=500"), 422, "validation_error")


@pytest.mark.commits
def test_search_reads_outside_a_transaction_and_leaves_the_session_transactional(api, app):
    """On PostgreSQL a search page's statements run in autocommit; the session's next use is a transaction again."""
    make_product(title="玻璃奶瓶")
    assert _titles(api.get("/api/v1/products", query_string={"q": "奶瓶"})) == ["玻璃奶瓶"]
    with app.test_request_context():
        with reads_outside_transaction():
            inside = db.session.connection().connection.dbapi_connection
            assert getattr(inside, "autocommit", False) == is_postgres()
        db.session.execute(update(Product).values(title="改名"))
        db.session.rollback()
        assert [p.title for p in db.session.scalars(select(Product))] == ["玻璃奶瓶"]
        assert not getattr(db.session.connection().connection.dbapi_connection, "autocommit", False)


def test_sorts_and_cursor_pagination(api, frozen_clock):
    from datetime import datetime, timedelta

    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (price, bp) in enumerate([(300, 1000), (100, 3000), (200, 2000), (200, 500)]):
        frozen_clock(start + timedelta(minutes=i))
        make_product(title=f"p{i}", price_fen=price, commission_rate_bp=bp)
    expectations = {
        "newest": ["p3", "p2", "p1", "p0"],
        "price_asc": ["p1", "p2", "p3", "p0"],
        "price_desc": ["p0", "p3", "p2", "p1"],
        "commission": ["p1", "p2", "p0", "p3"],
    }
    for sort, expected in expectations.items():
        seen, cursor = [], None
        while True:
            query = {"sort": sort, "limit": 3} | ({"cursor": cursor} if cursor else {})
            body = api.get("/api/v1/products", query_string=query).get_json()
            seen += [p["title"] for p in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert seen == expected, sort
    assert_error(api.get("/api/v1/products", query_string={"cursor": "garbage"}), 422, "invalid_cursor")
    assert_error(api.get("/api/v1/products", query_string={"sort": "random"}), 422, "validation_error")


@pytest.mark.parametrize(
    "sort, values",
    [
        ("newest", ["2026-01-01T00:00:00", 1]),  # a naive time
        ("newest", ["0001-01-01T00:00:00+01:00", 1]),  # before year 1 in UTC
        ("price_asc", [2**70, 1]),  # past BIGINT
        ("price_asc", [100, -(2**70)]),
    ],
)
def test_a_forged_cursor_is_422_not_500(api, sort, values):
    import base64

    make_product()
    forged = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    for query in ({}, {"q": "商品"}):
        assert_error(
            api.get("/api/v1/products", query_string={"sort": sort, "cursor": forged, **query}), 422, "invalid_cursor"
        )


def test_detail_shows_logged_in_sharer_level1_earning(api):
    product = make_product(price_fen=9999, commission_rate_bp=1500)
    anonymous = api.get(f"/api/v1/products/{product.id}").get_json()
    assert anonymous["my_earning"] is None
    mom = api.as_user("mom")
    earning = mom.get(f"/api/v1/products/{product.id}").get_json()["my_earning"]
    assert earning == {"level1_fen": 499, "level1_bp": 500, "rule_id": None}  # floor(9999 × 5%)
    assert_error(api.get("/api/v1/products/999999"), 404, "product_not_found")


def test_detail_earning_is_capped_by_seller_commission(api):
    product = make_product(price_fen=10000, commission_rate_bp=400)  # 400 fen for 800 fen of default shares
    earning = api.as_user("mom").get(f"/api/v1/products/{product.id}").get_json()["my_earning"]
    assert earning["level1_fen"] == 250  # 500 scaled by 400/800


def test_operator_manages_products_and_categories(api):
    operator = api.as_user("op", roles=("operator",))
    mom = api.as_user("mom")
    assert_error(mom.post("/api/v1/admin/categories", json={"name": "奶粉"}), 403, "role_required")
    category = operator.post("/api/v1/admin/categories", json={"name": "洗护"})
    assert category.status_code == 201
    assert_error(operator.post("/api/v1/admin/categories", json={"name": "洗护"}), 409, "category_exists")
    body = {
        "external_id": "own-1",
        "title": "宝宝洗发水",
        "price_fen": 3900,
        "commission_rate_bp": 2000,
        "category_id": category.get_json()["id"],
    }
    created = operator.post("/api/v1/admin/products", json=body)
    assert created.status_code == 201 and created.get_json()["source"] == "own"
    assert_error(operator.post("/api/v1/admin/products", json=body), 409, "product_exists")
    assert_error(
        operator.post("/api/v1/admin/products", json=body | {"external_id": "x", "category_id": 99999}),
        422,
        "unknown_categories",
    )
    assert_error(operator.post("/api/v1/admin/products", json=body | {"price_fen": -1}), 422, "validation_error")
    product_id = created.get_json()["id"]
    patched = operator.patch(f"/api/v1/admin/products/{product_id}", json={"is_active": False})
    assert patched.get_json()["is_active"] is False and patched.get_json()["title"] == "宝宝洗发水"
    assert_error(api.get(f"/api/v1/products/{product_id}"), 404, "product_not_found")
    assert_error(operator.patch(f"/api/v1/admin/products/{product_id}", json={}), 422, "validation_error")
    assert [c["name"] for c in api.get("/api/v1/categories").get_json()["items"]] == ["洗护"]


def test_import_jsonl_upserts_and_reports_bad_lines(app, tmp_path):
    feed = tmp_path / "feed.jsonl"
    rows = [
        {
            "external_id": "u1",
            "title": "儿童电动牙刷",
            "price_fen": 5900,
            "commission_rate_bp": 1500,
            "category": "洗护",
        },
        "not json",
        {"external_id": "u2", "title": "湿巾", "price_fen": -5, "commission_rate_bp": 1500},
        {"external_id": "u3", "title": "围兜", "price_fen": 1000, "commission_rate_bp": 800},
    ]
    feed.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    result = app.test_cli_runner().invoke(args=["catalog", "import", str(feed)])
    assert result.exit_code == 1
    assert "line 2:" in result.output and "line 3:" in result.output and "price_fen" in result.output
    assert "created 2, updated 0, rejected 2" in result.output
    feed.write_text(
        json.dumps(
            {"external_id": "u1", "title": "儿童电动牙刷 升级款", "price_fen": 6900, "commission_rate_bp": 1500},
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["catalog", "import", str(feed)])
    assert result.exit_code == 0 and "created 0, updated 1, rejected 0" in result.output
    found = catalog.products_by_external_id(source="union", external_ids=["u1", "u3"])
    assert found["u1"].title == "儿童电动牙刷 升级款" and found["u1"].price_fen == 6900
    assert "升级" in found["u1"].search_tokens and "围兜" in found["u3"].search_tokens
    assert found["u1"].category_id is not None


def test_import_csv(app, tmp_path):
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "external_id,title,price_fen,commission_rate_bp,images,is_active\n"
        "c1,奶瓶,2500,1200,https://a/1.jpg|https://a/2.jpg,true\n"
        "c2,奶嘴,abc,1200,,true\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["catalog", "import", str(feed)])
    assert "line 3:" in result.output and "created 1, updated 0, rejected 1" in result.output
    product = catalog.products_by_external_id(source="union", external_ids=["c1"])["c1"]
    assert product.images == ["https://a/1.jpg", "https://a/2.jpg"]


def test_import_csv_reports_numbers_in_other_scripts_as_bad_rows(app, tmp_path):
    feed = tmp_path / "feed.csv"
    # "²" and "٣" are digits to str.isdigit() but not to int(): a bad row, not the end of the import.
    feed.write_text(
        "external_id,title,price_fen,commission_rate_bp\n"
        "d1,奶瓶,\u00b2,1200\nd2,奶嘴,2500,\u0663\nd3,围兜,--5,1200\nd4,湿巾,1000,800\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["catalog", "import", str(feed)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "line 2:" in result.output and "line 3:" in result.output and "line 4:" in result.output
    assert "created 1, updated 0, rejected 3" in result.output


def test_import_reports_text_no_store_can_hold_as_bad_rows(app, tmp_path):
    feed = tmp_path / "feed.jsonl"
    rows = [
        json.dumps({"external_id": "s1", "title": "\ud800", "price_fen": 1, "commission_rate_bp": 1}).encode(),
        '{"external_id": "s2", "title": "奶瓶'.encode("gbk") + b'", "price_fen": 1, "commission_rate_bp": 1}',
        json.dumps({"external_id": "s3", "title": "围兜", "price_fen": 1, "commission_rate_bp": 1}).encode(),
    ]
    rows.append(b"[" * 100_000)  # nested past the JSON decoder's recursion limit
    feed.write_bytes(b"\n".join(rows) + b"\n")  # a lone surrogate (JSON's \ud800), then a line not in UTF-8
    result = app.test_cli_runner().invoke(args=["catalog", "import", str(feed)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "line 1:" in result.output and "line 2:" in result.output and "line 4:" in result.output
    assert "created 1, updated 0, rejected 3" in result.output


def test_unknown_ids_are_listed_under_their_field(app):
    import pytest

    from app.catalog import service
    from app.core.errors import Invalid

    with pytest.raises(Invalid) as products:
        service.require_products(product_ids=[987654, 987655])
    assert (products.value.code, products.value.errors) == ("unknown_products", {"product_ids": [987654, 987655]})
    with pytest.raises(Invalid) as categories:
        service.require_categories(category_ids=[987654])
    assert (categories.value.code, categories.value.errors) == ("unknown_categories", {"category_ids": [987654]})
    assert service.products_by_id(product_ids=[]) == {}

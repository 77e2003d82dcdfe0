"""Partner content through the API: ownership, validation, sanitising, bulk upload and the review workflow."""

import json

import pytest

from app.content import pgc
from app.core.errors import ApiError
from tests.affiliate_helpers import make_product
from tests.content_helpers import KP, approve_all, make_course
from tests.helpers import assert_error


@pytest.fixture
def partner(api):
    return api.as_user("partner1", roles=("partner",))


@pytest.fixture
def operator(api):
    return api.as_user("op", roles=("operator",))


def test_partner_builds_course_lessons_and_points(partner):
    course, _lessons, points = make_course(partner, lessons=2, points=2)
    assert course["status"] == "draft" and course["partner_id"] == partner.user["id"]
    detail = partner.get(f"/api/v1/partner/courses/{course['id']}").get_json()
    assert [lesson["title"] for lesson in detail["lessons"]] == ["第1课", "第2课"]
    page = partner.get(f"/api/v1/partner/courses/{course['id']}/knowledge-points", query_string={"limit": 3}).get_json()
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = partner.get(
        f"/api/v1/partner/courses/{course['id']}/knowledge-points", query_string={"cursor": page["next_cursor"]}
    ).get_json()
    assert [p["id"] for p in page["items"] + rest["items"]] == [p["id"] for p in points]
    assert [c["id"] for c in partner.get("/api/v1/partner/courses").get_json()["items"]] == [course["id"]]


def test_mom_and_other_partner_are_refused(api, partner):
    course, lessons, points = make_course(partner)
    other = api.as_user("partner2", roles=("partner",))
    mom = api.as_user("mom")
    assert_error(mom.post("/api/v1/partner/courses", json={"title": "x"}), 403, "role_required")
    assert_error(
        other.patch(f"/api/v1/partner/courses/{course['id']}", json={"title": "mine"}), 403, "content_not_yours"
    )
    assert_error(
        other.patch(f"/api/v1/partner/lessons/{lessons[0]['id']}", json={"title": "mine"}), 403, "content_not_yours"
    )
    assert_error(
        other.patch(f"/api/v1/partner/knowledge-points/{points[0]['id']}", json={"title": "mine"}),
        403,
        "content_not_yours",
    )
    assert_error(
        other.post(f"/api/v1/partner/lessons/{lessons[0]['id']}/knowledge-points", json=KP), 403, "content_not_yours"
    )
    assert_error(other.post(f"/api/v1/partner/courses/{course['id']}/submit"), 403, "content_not_yours")
    assert_error(other.get(f"/api/v1/partner/courses/{course['id']}"), 403, "content_not_yours")
    assert other.get("/api/v1/partner/courses").get_json()["items"] == []
    assert_error(partner.get("/api/v1/partner/courses/999999"), 404, "course_not_found")


def test_knowledge_point_validation(partner, app):
    _course, lessons, _ = make_course(partner, points=0)
    url = f"/api/v1/partner/lessons/{lessons[0]['id']}/knowledge-points"
    no_age = {k: v for k, v in KP.items() if k != "min_age_months"}
    body = assert_error(partner.post(url, json=no_age), 422, "validation_error")
    assert "min_age_months" in body["errors"]
    assert_error(partner.post(url, json=KP | {"min_age_months": 40, "max_age_months": 12}), 422, "validation_error")
    assert_error(partner.post(url, json=KP | {"max_age_months": 500}), 422, "validation_error")
    assert_error(partner.post(url, json=KP | {"image_urls": ["javascript:alert(1)"]}), 422, "validation_error")
    assert_error(partner.post(url, json=KP | {"product_ids": [987654]}), 422, "unknown_products")
    oversize = "<p>" + "长" * (app.config["CONTENT_BODY_MAX_CHARS"] + 1) + "</p>"
    assert_error(partner.post(url, json=KP | {"body": oversize}), 413, "body_too_large")
    product = make_product()
    made = partner.post(url, json=KP | {"product_ids": [product.id, product.id]})
    assert made.status_code == 201 and made.get_json()["product_ids"] == [product.id]
    point_id = made.get_json()["id"]
    assert_error(
        partner.patch(f"/api/v1/partner/knowledge-points/{point_id}", json={"min_age_months": 100}),
        422,
        "validation_error",
    )
    assert_error(
        partner.patch(f"/api/v1/partner/knowledge-points/{point_id}", json={"body": oversize}), 413, "body_too_large"
    )
    assert partner.get(f"/api/v1/partner/knowledge-points/{point_id}").get_json()["min_age_months"] == 12


def test_rich_text_is_sanitised(partner):
    _course, lessons, _ = make_course(partner, points=0)
    body = (
        '<p onclick="steal()">刷牙<script>alert(1)</script><a href="javascript:alert(2)">链接</a>'
        '<img src="https://img.example/a.png" onerror="alert(3)"><iframe src="https://evil"></iframe>'
        '<a href="https://ok.example/">ok</a></p><style>p{}</style>'
    )
    made = partner.post(
        f"/api/v1/partner/lessons/{lessons[0]['id']}/knowledge-points",
        json=KP | {"body": body, "title": "<b>标题</b><script>x()</script>", "tags": ["<i>刷牙</i>", "刷牙"]},
    )
    point = made.get_json()
    for bad in ("script", "onclick", "onerror", "javascript:", "iframe", "style", "alert(1)"):
        assert bad not in point["body"], bad
    assert '<img src="https://img.example/a.png">' in point["body"] and "<strong>" not in point["title"]
    assert 'href="https://ok.example/"' in point["body"]
    assert point["title"] == "标题" and point["tags"] == ["刷牙"]


def test_review_workflow(partner, operator, api):
    course, lessons, points = make_course(partner, points=2)
    point_id = points[0]["id"]
    with pytest.raises(ApiError) as refused:
        pgc.postable_knowledge_point(knowledge_point_id=point_id)
    assert refused.value.code == "content_not_approved"
    submitted = partner.post(f"/api/v1/partner/courses/{course['id']}/submit").get_json()["submitted"]
    assert submitted == {"course": 1, "lesson": 1, "knowledge_point": 2}
    assert_error(partner.post(f"/api/v1/partner/knowledge-points/{point_id}/submit"), 409, "not_submittable")
    queue = operator.get("/api/v1/admin/content/reviews", query_string={"kind": "knowledge_point"}).get_json()
    assert [i["id"] for i in queue["items"]] == [p["id"] for p in points]
    assert_error(
        partner.post(f"/api/v1/admin/content/knowledge-points/{point_id}/review", json={"decision": "approve"}),
        403,
        "role_required",
    )
    assert_error(
        operator.post(f"/api/v1/admin/content/knowledge-points/{point_id}/review", json={"decision": "reject"}),
        422,
        "validation_error",
    )
    rejected = operator.post(
        f"/api/v1/admin/content/knowledge-points/{point_id}/review", json={"decision": "reject", "reason": "年龄段不对"}
    ).get_json()
    assert rejected["status"] == "rejected"
    assert partner.get(f"/api/v1/partner/knowledge-points/{point_id}").get_json()["reject_reason"] == "年龄段不对"
    assert_error(
        operator.post(f"/api/v1/admin/content/knowledge-points/{point_id}/review", json={"decision": "approve"}),
        409,
        "not_pending_review",
    )
    partner.patch(f"/api/v1/partner/knowledge-points/{point_id}", json={"min_age_months": 18})
    assert (
        partner.post(f"/api/v1/partner/knowledge-points/{point_id}/submit").get_json()["submitted"]["knowledge_point"]
        == 1
    )
    for path, item_id in (("courses", course["id"]), ("lessons", lessons[0]["id"]), ("knowledge-points", point_id)):
        assert (
            operator.post(f"/api/v1/admin/content/{path}/{item_id}/review", json={"decision": "approve"}).status_code
            == 200
        )
    assert pgc.postable_knowledge_point(knowledge_point_id=point_id).id == point_id
    with pytest.raises(ApiError):  # its sibling is still waiting
        pgc.postable_knowledge_point(knowledge_point_id=points[1]["id"])

    edited = partner.patch(f"/api/v1/partner/knowledge-points/{point_id}", json={"title": "新标题"}).get_json()
    assert edited["status"] == "pending_review"
    with pytest.raises(ApiError):
        pgc.postable_knowledge_point(knowledge_point_id=point_id)
    unchanged = partner.patch(f"/api/v1/partner/courses/{course['id']}", json={"title": course["title"]}).get_json()
    assert unchanged["status"] == "approved"  # saving without a change does not send it back
    trail = partner.get(f"/api/v1/partner/knowledge-points/{point_id}/reviews").get_json()["items"]
    assert [t["action"] for t in trail] == ["submitted", "rejected", "submitted", "approved", "resubmitted_by_edit"]
    assert trail[1]["reason"] == "年龄段不对"


def test_approve_all_makes_every_point_postable(partner, operator):
    course, _, points = make_course(partner, lessons=2, points=2)
    approve_all(partner, operator, course["id"])
    for point in points:
        assert pgc.postable_knowledge_point(knowledge_point_id=point["id"]).status == "approved"


def test_bulk_upload_json_keeps_good_rows_and_reports_bad(partner, app):
    course, _, _ = make_course(partner, points=0)
    product = make_product()
    good = {"lesson": "第1课", "title": "t", "body": "<p>x</p>", "min_age_months": 0, "max_age_months": 12}
    items = []
    for i in range(300):
        items.append(good | {"title": f"点{i}", "lesson": f"第{i % 3 + 1}课", "product_ids": [product.id]})
    items[10] = {k: v for k, v in good.items() if k != "max_age_months"}
    items[20] = good | {"product_ids": [999999]}
    items[30] = "not an object"
    items[40] = good | {"min_age_months": 20, "max_age_months": 10}
    items[50] = good | {"body": "x" * (app.config["CONTENT_BODY_MAX_CHARS"] + 1)}
    items[60] = good | {"title": "<script>x</script>"}
    report = partner.post(f"/api/v1/partner/courses/{course['id']}/knowledge-points/bulk", json={"items": items})
    assert report.status_code == 200, report.get_json()
    body = report.get_json()
    assert body["created"] == 294 and body["lessons_created"] == 2  # 第1课 existed
    assert [e["row"] for e in body["errors"]] == [11, 21, 31, 41, 51, 61]
    assert "max_age_months" in body["errors"][0]["errors"] and "product_ids" in body["errors"][1]["errors"]
    listed = partner.get(f"/api/v1/partner/courses/{course['id']}/knowledge-points", query_string={"limit": 100})
    assert all(p["status"] == "draft" for p in listed.get_json()["items"])
    assert_error(
        partner.post(f"/api/v1/partner/courses/{course['id']}/knowledge-points/bulk", json={"items": []}),
        422,
        "validation_error",
    )
    assert_error(
        partner.post(f"/api/v1/partner/courses/{course['id']}/knowledge-points/bulk", json=[1]), 422, "validation_error"
    )
    app.config["CONTENT_BULK_MAX_ROWS"], limit = 5, app.config["CONTENT_BULK_MAX_ROWS"]
    try:
        assert_error(
            partner.post(f"/api/v1/partner/courses/{course['id']}/knowledge-points/bulk", json={"items": items[:6]}),
            413,
            "too_many_rows",
        )
    finally:
        app.config["CONTENT_BULK_MAX_ROWS"] = limit


def test_bulk_upload_csv_reports_line_numbers(api, partner, client):
    course, _, _ = make_course(partner, points=0)
    product = make_product()
    csv_text = (
        "lesson,title,body,image_urls,min_age_months,max_age_months,tags,product_ids\n"
        f"入门,刷牙一,<p>a</p>,https://img.example/1.jpg|https://img.example/2.jpg,0,12,刷牙|口腔,{product.id}\n"
        "入门,刷牙二,<p>b</p>,,,12,,\n"
        "进阶,刷牙三,<p>c</p>,,6,abc,,\n"
        "进阶,刷牙四,<p>d</p>,,6,24,,\n"
    )
    response = client.post(
        f"/api/v1/partner/courses/{course['id']}/knowledge-points/bulk",
        data=csv_text.encode(),
        content_type="text/csv",
        headers={"Authorization": f"Bearer {partner.token}"},
    )
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["created"] == 2 and [e["row"] for e in body["errors"]] == [3, 4]
    points = partner.get(f"/api/v1/partner/courses/{course['id']}/knowledge-points").get_json()["items"]
    first = next(p for p in points if p["title"] == "刷牙一")
    assert first["image_urls"] == ["https://img.example/1.jpg", "https://img.example/2.jpg"]
    assert first["tags"] == ["刷牙", "口腔"] and first["product_ids"] == [product.id]
    bad = client.post(
        f"/api/v1/partner/courses/{course['id']}/knowledge-points/bulk",
        data=b"\xff\xfe\x00bad",
        content_type="text/csv",
        headers={"Authorization": f"Bearer {partner.token}"},
    )
    assert_error(bad, 422, "bad_csv")
    other = client.post(
        f"/api/v1/partner/courses/{course['id']}/knowledge-points/bulk",
        data=b"x",
        content_type="text/plain",
        headers={"Authorization": f"Bearer {partner.token}"},
    )
    assert_error(other, 415, "unsupported_media_type")
    broken = client.post(
        f"/api/v1/partner/courses/{course['id']}/knowledge-points/bulk",
        data=b"{",
        content_type="application/json",
        headers={"Authorization": f"Bearer {partner.token}"},
    )
    assert_error(broken, 400, "malformed_json")
    assert json.loads(broken.get_data())["code"] == "malformed_json"

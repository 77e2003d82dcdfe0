"""Builders for the content tests: partner courses through the API, approved in one go."""

KP = {
    "title": "宝宝不爱刷牙怎么办",
    "body": "<p>先让宝宝<strong>自己玩</strong>牙刷。</p>",
    "min_age_months": 12,
    "max_age_months": 36,
    "tags": ["刷牙"],
}


def make_course(partner, *, title="口腔护理", topic="刷牙", lessons=1, points=2, ages=None):
    """A course with `lessons` lessons of `points` knowledge points each; returns (course, lessons, points)."""
    course = partner.post("/api/v1/partner/courses", json={"title": title, "topic": topic}).get_json()
    made_lessons, made_points = [], []
    for li in range(lessons):
        lesson = partner.post(
            f"/api/v1/partner/courses/{course['id']}/lessons", json={"title": f"第{li + 1}课", "position": li + 1}
        ).get_json()
        made_lessons.append(lesson)
        for pi in range(points):
            low, high = (ages or {}).get((li, pi), (12, 36))
            body = KP | {
                "title": f"{title} {li + 1}-{pi + 1}",
                "position": pi + 1,
                "min_age_months": low,
                "max_age_months": high,
            }
            response = partner.post(f"/api/v1/partner/lessons/{lesson['id']}/knowledge-points", json=body)
            assert response.status_code == 201, response.get_json()
            made_points.append(response.get_json())
    return course, made_lessons, made_points


def approve_all(partner, operator, course_id):
    """Submit a course with everything in it and approve every item."""
    assert partner.post(f"/api/v1/partner/courses/{course_id}/submit").status_code == 200
    for kind, path in (("course", "courses"), ("lesson", "lessons"), ("knowledge_point", "knowledge-points")):
        queue = operator.get("/api/v1/admin/content/reviews", query_string={"kind": kind, "limit": 100}).get_json()
        for item in queue["items"]:
            response = operator.post(f"/api/v1/admin/content/{path}/{item['id']}/review", json={"decision": "approve"})
            assert response.status_code == 200, response.get_json()


def make_group(host, *, age_band="1-3y", name="阳光宝贝群", tags=("kindergarten",)):
    body = {"name": name, "channel": "sandbox", "age_band": age_band, "tags": list(tags)}
    response = host.post("/api/v1/groups", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def join(member, host, group_id):
    scene = host.get(f"/api/v1/groups/{group_id}/invite").get_json()["scene"]
    assert member.post("/api/v1/groups/join", json={"scene": scene}).status_code == 200


def publish(mom, text="宝宝爱用这款牙刷", license_version="2026-01", **extra):
    body = {"text": text, "publish": True, "accept_license_version": license_version} | extra
    response = mom.post("/api/v1/member-posts", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()

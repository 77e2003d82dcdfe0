"""Demo content: the partner's approved toothbrushing course (topic 刷牙) and a mom's post.

The delivery demo drips the course into the toddler group.
"""

from sqlalchemy import select

from app.accounts import service as accounts
from app.content import flows, pgc, ugc
from app.content.models import Course
from app.core.db import db, transactional

SEED_ORDER = 40
TOPIC = "刷牙"
POINTS = [  # (lesson, title, body, min months, max months)
    (
        "第一课 爱上刷牙",
        "宝宝不爱刷牙怎么办",
        "<p>先让宝宝<strong>自己挑牙刷</strong>，再用儿歌计时两分钟。</p>",
        12,
        36,
    ),
    ("第一课 爱上刷牙", "第一把牙刷怎么选", "<p>选小刷头、软毛，三个月换一次。</p>", 6, 24),
    ("第二课 用对牙膏", "牙膏用多少", "<p>三岁以下米粒大小，三岁以上豌豆大小。</p>", 12, 72),
    ("第二课 用对牙膏", "含氟牙膏安全吗", "<p>按量使用是安全的，能有效预防龋齿。</p>", 24, 72),
]


@transactional
def seed() -> list[str]:
    """Create and approve the course and publish a mom's post (skipped when the course exists)."""
    partner, operator = (accounts.find_user(ref=ref) for ref in ("partner", "operator"))
    if None in (partner, operator) or db.session.scalar(select(Course.id).where(Course.partner_id == partner.id)):
        return []
    actor = pgc.Actor(id=partner.id, operator=False)
    course = pgc.create_course(
        actor=actor,
        title="宝宝刷牙课",
        description="<p>从第一颗牙开始。</p>",
        topic=TOPIC,
        cover_url=None,
        tags=["口腔"],
    )
    rows = [
        (i, {"lesson": lesson, "title": title, "body": body, "min_age_months": low, "max_age_months": high})
        for i, (lesson, title, body, low, high) in enumerate(POINTS, start=1)
    ]
    pgc.bulk_upload(course_id=course.id, actor=actor, rows=rows)
    pgc.submit(kind="course", item_id=course.id, actor=actor)
    for kind in pgc.MODELS:
        for item in pgc.review_queue(kind=kind, cursor=None, limit=100)[0]:
            pgc.review(kind=kind, item_id=item.id, operator_id=operator.id, decision="approve", reason=None)
    mom = accounts.find_user(ref="mom06")
    if mom is not None:
        flows.create_member_post(
            author_id=mom.id,
            values={"text": "<p>用了儿歌计时，宝宝终于肯刷牙了！</p>"},
            publish=True,
            accept_license_version=ugc.current_license(),
        )
    return []

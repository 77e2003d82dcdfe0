"""Demo users: an operator, two hosts, a partner and ten moms in a referral tree."""

from app.accounts import service

SEED_ORDER = 0

# (openid, nickname, inviter openid)
MOMS = [
    ("mom01", "小雨妈妈", "host1"),
    ("mom02", "乐乐妈妈", "host1"),
    ("mom03", "朵朵妈妈", "mom01"),
    ("mom04", "豆豆妈妈", "mom01"),
    ("mom05", "果果妈妈", "mom03"),
    ("mom06", "安安妈妈", "host2"),
    ("mom07", "糖糖妈妈", "mom06"),
    ("mom08", "米米妈妈", "mom06"),
    ("mom09", "贝贝妈妈", "mom07"),
    ("mom10", "悠悠妈妈", None),
]


def seed() -> list[str]:
    """Create the demo users (skipped when they exist); returns the sandbox login codes to try."""
    users = {
        "operator": service.ensure_user(openid="operator", nickname="运营小王", roles=("operator",)),
        "host1": service.ensure_user(openid="host1", nickname="阳光幼儿园大一班群主", roles=("host",)),
        "host2": service.ensure_user(openid="host2", nickname="宝宝成长群群主", roles=("host",)),
        "partner": service.ensure_user(openid="partner", nickname="育儿学堂", roles=("partner",)),
    }
    for openid, nickname, inviter in MOMS:
        users[openid] = service.ensure_user(
            openid=openid, nickname=nickname, inviter=users[inviter] if inviter else None
        )
    return [f"sandbox:{openid}" for openid in users]

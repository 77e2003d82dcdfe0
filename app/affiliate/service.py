"""Affiliate use cases: what a sharer earns, commission rules, the level-2 switch, share links and clicks."""

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from app.affiliate import attribution, clicks, rules
from app.affiliate.attribution import LineIn as LineIn  # other domains build order lines through this service
from app.affiliate.attribution import OrderIn
from app.affiliate.commission import SHARES as SHARES  # orders builds its journals from the same shares
from app.affiliate.commission import reversed_share as reversed_share
from app.affiliate.commission import split
from app.affiliate.models import Attribution, Click, CommissionRule, PlatformSetting, ShareLink
from app.catalog import service as catalog
from app.core.clock import now_utc
from app.core.db import after_commit, db
from app.core.errors import Conflict, Invalid, NotFound
from app.core.jobs import batch_job
from app.core.redis import get_redis, key
from app.ledger import service as ledger
from app.wechat import service as wechat

CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 8
CODE_IMAGE_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ShareCard:
    title: str
    image: str | None
    price_fen: int


@dataclass(frozen=True)
class SharedLink:
    """What a sharer gets back: the short code, the mini-program path carrying it, the card to post."""

    link: ShareLink
    code: str
    path: str
    url: str
    card: ShareCard


def sharer_earning(*, product_id: int, category_id: int | None, price_fen: int, seller_bp: int) -> dict:
    """What the level-1 sharer earns on one unit at list price under the rules in force now."""
    rates = rules.rates_for(product_id=product_id, category_id=category_id)
    shares = split(
        paid_fen=price_fen,
        seller_bp=seller_bp,
        level1_bp=rates.level1_bp,
        level2_bp=rates.level2_bp if rules.level2_enabled() else 0,
        host_bp=rates.host_bp,
        content_bp=rates.content_bp,
    )
    return {"level1_fen": shares.level1_fen, "level1_bp": rates.level1_bp, "rule_id": rates.rule_id}


def earnings_summary(*, user_id: int) -> dict:
    """Balances per state (pending, available, withdrawing, withdrawn) and net earnings per share."""
    return {"balances": ledger.balances(owner_id=user_id), "by_share": ledger.earnings_by_share(owner_id=user_id)}


def list_rules(*, at: datetime | None) -> list[CommissionRule]:
    """Every rule, or only those in force at `at`, newest first."""
    if at is not None:
        return sorted(rules.RuleBook(at).in_force(at), key=lambda r: r.id, reverse=True)
    return list(db.session.scalars(select(CommissionRule).order_by(CommissionRule.id.desc())))


def create_rule(
    *,
    kind: str,
    name: str,
    category_id: int | None,
    product_id: int | None,
    level1_bp: int,
    level2_bp: int,
    host_bp: int,
    content_bp: int,
    starts_at: datetime | None,
    ends_at: datetime | None,
    created_by_id: int | None,
) -> CommissionRule:
    """Add an override; rules are never edited in place (end one and add another), so history stays readable."""
    if kind == "category" and (category_id is None or product_id is not None):
        raise Invalid("A category rule names a category and no product.", code="rule_target_invalid")
    if kind == "product" and (product_id is None or category_id is not None):
        raise Invalid("A product rule names a product and no category.", code="rule_target_invalid")
    if category_id is not None:
        catalog.require_categories(category_ids=[category_id])
    if product_id is not None:
        catalog.require_products(product_ids=[product_id])
    starts_at = starts_at or now_utc()
    if ends_at is not None and ends_at <= starts_at:
        raise Invalid(
            "The window must end after it starts.",
            code="rule_window_invalid",
            errors={"ends_at": ["Must be after starts_at."]},
        )
    rule = CommissionRule(
        kind=kind,
        name=name,
        category_id=category_id,
        product_id=product_id,
        level1_bp=level1_bp,
        level2_bp=level2_bp,
        host_bp=host_bp,
        content_bp=content_bp,
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=now_utc(),
        created_by_id=created_by_id,
    )
    db.session.add(rule)
    db.session.flush()
    return rule


def end_rule(*, rule_id: int, ends_at: datetime | None) -> CommissionRule:
    """Close a rule's window (now by default); past attributions keep the rates they copied."""
    rule = db.session.get(CommissionRule, rule_id)
    if rule is None:
        raise NotFound("No such rule.", code="rule_not_found")
    ends_at = ends_at or now_utc()
    if ends_at <= rule.starts_at:
        raise Invalid(
            "The window must end after it starts.",
            code="rule_window_invalid",
            errors={"ends_at": ["Must be after starts_at."]},
        )
    if rule.ends_at is None or ends_at < rule.ends_at:
        rule.ends_at = ends_at
    db.session.flush()
    return rule


def get_settings() -> dict:
    """The platform switches an operator controls."""
    return {"level2_enabled": rules.level2_enabled()}


def set_level2(*, enabled: bool, operator_id: int | None) -> dict:
    """Switch level-2 commission on or off platform-wide (affects orders attributed from now on)."""
    row = db.session.get(PlatformSetting, rules.LEVEL2_SETTING)
    if row is None:
        db.session.add(
            PlatformSetting(
                key=rules.LEVEL2_SETTING, value={"value": enabled}, updated_at=now_utc(), updated_by_id=operator_id
            )
        )
    else:
        row.value = {"value": enabled}
        row.updated_at = now_utc()
        row.updated_by_id = operator_id
    db.session.flush()
    return get_settings()


def _page_path(code: str, product_id: int) -> str:
    return f"{current_app.config['SHARE_PAGE']}?code={code}&product_id={product_id}"


def _landing_url(product) -> str:
    """Where /s/<code> sends a browser: the union coupon or product link, else the product's landing page."""
    fallback = current_app.config["SHARE_LANDING_URL"]
    return product.union_coupon_url or product.link_url or fallback.format(product_id=product.id)


def _shared(link: ShareLink, product) -> SharedLink:
    return SharedLink(
        link=link,
        code=link.code,
        path=_page_path(link.code, product.id),
        url=f"/s/{link.code}",
        card=ShareCard(title=product.title, image=(product.images or [None])[0], price_fen=product.price_fen),
    )


def _cache_payload(link: ShareLink, product) -> dict:
    return {
        "id": link.id,
        "code": link.code,
        "sharer_id": link.sharer_id,
        "product_id": link.product_id,
        "group_id": link.group_id,
        "post_id": link.post_id,
        "content_id": link.content_id,
        "host_id": link.host_id,
        "content_author_id": link.content_author_id,
        "landing": _landing_url(product),
    }


def create_share_link(
    *,
    sharer_id: int,
    product_id: int,
    group_id: int | None = None,
    post_id: int | None = None,
    content_id: int | None = None,
    host_id: int | None = None,
    content_author_id: int | None = None,
) -> SharedLink:
    """Make (or reuse) the sharer's tracked link to a product; returns code, mini-program path and card.

    Other domains call this for product cards: the delivery and content domains pass the group's `host_id`
    and the content's `content_author_id`, which earn the host and content shares on orders through the link.
    It trusts its caller with them; a mom's own link comes through `app.delivery.flows.share_link_for_sharer`,
    which checks them. Inactive products (422 `product_inactive`) and products that may not be advertised (422
    `product_not_advertisable`) cannot be shared.
    """
    product = catalog.get_product(product_id=product_id)
    if not product.is_active:
        raise Invalid("This product is not on sale.", code="product_inactive")
    catalog.require_advertisable(product_ids=[product_id])
    same = {
        "sharer_id": sharer_id,
        "product_id": product_id,
        "group_id": group_id,
        "post_id": post_id,
        "content_id": content_id,
        "host_id": host_id,
        "content_author_id": content_author_id,
    }
    existing = db.session.scalar(select(ShareLink).filter_by(**same).order_by(ShareLink.id).limit(1))
    if existing is not None:
        clicks.cache_link(existing.code, _cache_payload(existing, product))
        return _shared(existing, product)
    for _ in range(5):
        link = ShareLink(
            code="".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)), created_at=now_utc(), **same
        )
        try:
            with db.session.begin_nested():
                db.session.add(link)
            break
        except IntegrityError:
            continue
    else:
        raise Conflict("Could not allocate a share code; try again.", code="share_code_exhausted")
    payload = _cache_payload(link, product)
    after_commit(lambda: clicks.cache_link(link.code, payload))
    return _shared(link, product)


def share_code_image(*, code: str, product_id: int) -> str:
    """The mini-program code image (a PNG data URL) whose scene is the share code, cached a day."""
    cache_key = key("share-image", code)
    redis = get_redis()
    image = redis.get(cache_key)
    if image is None:
        image = wechat.miniprogram_code_png(scene=code, page=current_app.config["SHARE_PAGE"])
        redis.set(cache_key, image, ex=CODE_IMAGE_TTL_SECONDS)
    return "data:image/png;base64," + base64.b64encode(image).decode()


def _load_into_cache(code: str) -> bool:
    link = db.session.scalar(select(ShareLink).where(ShareLink.code == code))
    if link is None:
        return False
    clicks.cache_link(code, _cache_payload(link, catalog.get_product(product_id=link.product_id)))
    return True


def follow_share_link(*, code: str, buyer_id: int | None, visitor: str) -> str:
    """Count a browser's click on a share code (once a minute per visitor or buyer); returns the landing url."""
    if current_app.config["CLICK_WRITE_BEHIND"]:
        _check_code(code)
        landing = clicks.record_later(code=code, buyer_id=buyer_id, visitor=visitor, via="redirect", at=now_utc())
        if landing is not None:
            return landing
    return record_click(code=code, buyer_id=buyer_id, visitor=visitor, via="redirect")[1]


def _check_code(code: str) -> None:
    if not (code.isascii() and code.isalnum()):
        raise NotFound("No such share link.", code="share_link_not_found")


def record_click(*, code: str, buyer_id: int | None, visitor: str | None, via: str) -> tuple[bool, str]:
    """Count a click on a share code (once a minute per buyer); returns (counted, landing url)."""
    _check_code(code)
    at = now_utc()
    result = clicks.record(code=code, buyer_id=buyer_id, visitor=visitor, via=via, at=at)
    if result is None:
        if not _load_into_cache(code):
            raise NotFound("No such share link.", code="share_link_not_found")
        result = clicks.record(code=code, buyer_id=buyer_id, visitor=visitor, via=via, at=at)
        if result is None:
            raise Conflict("The share link could not be loaded; try again.", code="share_link_unavailable")
    counted, link = result
    return counted, link["landing"]


@batch_job
def persist_clicks() -> int:
    """Persist the clicks counted in Redis, a use case per batch (a scheduled job; safe to run twice or at once)."""
    return clicks.persist()


def attribute_orders(*, orders: list[OrderIn], set_based: bool = False) -> dict[int, dict]:
    """Decide who earns on each line of new orders and store it (order ingestion calls this); rows by line id.

    `set_based` (statement imports) looks up and writes in bulk on PostgreSQL; the decisions are the same.
    """
    return attribution.attribute(orders, set_based=set_based)


def lines_attributed_to_group(*, group_id: int) -> Select:
    """A subquery of the order line ids attributed to a group (for IN clauses of figures by group)."""
    return select(Attribution.order_line_id).where(Attribution.group_id == group_id)


def attributions_by_id(*, attribution_ids: list[int]) -> dict[int, dict]:
    """Attribution records (who earned and why, with the copied rates) keyed by id."""
    wanted = set(attribution_ids)
    if not wanted:
        return {}
    rows = db.session.execute(select(Attribution.__table__).where(Attribution.id.in_(wanted))).mappings()
    return {row["id"]: dict(row) for row in rows}


def attributions_of_order(*, order_id: int) -> list[dict]:
    """The attribution of every line of one order."""
    rows = db.session.execute(
        select(Attribution.__table__).where(Attribution.order_id == order_id).order_by(Attribution.order_line_id)
    ).mappings()
    return [dict(row) for row in rows]


def group_click_count(*, group_id: int, since: datetime | None = None, until: datetime | None = None) -> int:
    """Counted clicks on share links made for a group (clicked_at in [since, until), all time by default)."""
    stmt = select(func.count()).select_from(Click).where(Click.group_id == group_id)
    if since is not None:
        stmt = stmt.where(Click.clicked_at >= since)
    if until is not None:
        stmt = stmt.where(Click.clicked_at < until)
    return int(db.session.scalar(stmt) or 0)


def content_figures(*, content_ids: list[int]) -> dict[int, dict]:
    """Per content id (the content domain's ids): counted clicks, attributed orders, GMV and content shares."""
    wanted = sorted(set(content_ids))
    figures = {cid: {"clicks": 0, "orders": 0, "gmv_fen": 0, "content_fen": 0} for cid in wanted}
    if not wanted:
        return figures
    for content_id, count in db.session.execute(
        select(Click.content_id, func.count()).where(Click.content_id.in_(wanted)).group_by(Click.content_id)
    ):
        figures[content_id]["clicks"] = count
    for content_id, orders, gmv, share in db.session.execute(
        select(
            Attribution.content_id,
            func.count(func.distinct(Attribution.order_id)),
            func.coalesce(func.sum(Attribution.base_fen), 0),
            func.coalesce(func.sum(Attribution.content_fen), 0),
        )
        .where(Attribution.content_id.in_(wanted))
        .group_by(Attribution.content_id)
    ):
        figures[content_id].update(orders=orders, gmv_fen=int(gmv), content_fen=int(share))
    return figures

"""Post kinds: what each carries, what it freezes when an occurrence goes out, and the payload per channel.

The worker and the preview both call `render`, so a preview is the exact payload a group receives.
A kind is available when its entry is in KINDS; its source object (product, coupon, knowledge point) is
checked when the post is saved and again, frozen, when an occurrence goes out (`snapshot`).

Attribution: product cards open the affiliate share link of (group host, product, group, post) and coupon
drops the coupons share code of (group host, template, group, post), so clicks, claims and orders through a
card credit the group's host. The host is the sharer: the bot posts on the host's behalf into the host's group.
Both codes are created on first render and reused afterwards (the preview shows the very code that is sent).
Knowledge points come from the content domain: a fixed point is frozen with the occurrence; a drip (a course
or topic) gets each group's next point when rendered, and the content domain records what each group got.
"""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.core.errors import Invalid
from app.core.money import yuan

TEXT_MAX_BYTES = 2048  # WeCom robot text limit
MARKDOWN_MAX_BYTES = 4096  # WeCom robot markdown limit


def _max_bytes(limit: int) -> Callable[[str], None]:
    def check(value: str) -> None:
        if len(value.encode()) > limit:
            raise ValidationError(f"At most {limit} bytes in UTF-8.")

    return check


class TextContent(Schema):
    text = fields.String(required=True, validate=[validate.Length(min=1), _max_bytes(TEXT_MAX_BYTES)])


class MarkdownContent(Schema):
    markdown = fields.String(required=True, validate=[validate.Length(min=1), _max_bytes(MARKDOWN_MAX_BYTES)])


class MiniProgramContent(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=64))
    description = fields.String(load_default="", validate=validate.Length(max=128))
    page = fields.String(required=True, validate=validate.Length(min=1, max=256))
    pic_media_id = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "WeCom media id of the card picture (customer groups)."},
    )


class ProductContent(Schema):
    product_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**53))
    text = fields.String(load_default="", validate=validate.Length(max=500))
    pic_media_id = fields.String(load_default=None, validate=validate.Length(min=1, max=128))


class KnowledgePointContent(Schema):
    """One approved knowledge point, or a drip: each time, the next point of a course or topic per group."""

    knowledge_point_id = fields.Integer(validate=validate.Range(min=1, max=2**53))
    course_id = fields.Integer(validate=validate.Range(min=1, max=2**53))
    topic = fields.String(validate=validate.Length(min=1, max=32))
    pic_media_id = fields.String(load_default=None, validate=validate.Length(min=1, max=128))

    @validates_schema
    def _one_source(self, data, **kwargs):
        if sum(data.get(name) is not None for name in ("knowledge_point_id", "course_id", "topic")) != 1:
            raise ValidationError("Name exactly one of knowledge_point_id, course_id or topic.")


class CouponContent(Schema):
    template_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**53))
    text = fields.String(load_default="", validate=validate.Length(max=500))
    pic_media_id = fields.String(load_default=None, validate=validate.Length(min=1, max=128))


class Skip(Exception):
    """Nothing to send to this group at this occurrence, which is no failure (the delivery ends `skipped`)."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class Kind:
    content_schema: type[Schema]
    is_card: bool


KINDS = {
    "text": Kind(TextContent, False),
    "markdown": Kind(MarkdownContent, False),
    "miniprogram_card": Kind(MiniProgramContent, True),
    "product_card": Kind(ProductContent, True),
    "coupon_drop": Kind(CouponContent, True),
    "knowledge_point": Kind(KnowledgePointContent, False),
}


def validate_content(kind: str, content: dict) -> dict:
    """The content, cleaned by the kind's schema, or 422 `invalid_content` with per-field errors."""
    if kind not in KINDS:
        raise Invalid(f"Posts of kind '{kind}' are not available yet.", code="post_kind_unavailable")
    try:
        clean = KINDS[kind].content_schema().load(content or {})
    except ValidationError as exc:
        raise Invalid(
            "The content does not fit the post kind.", code="invalid_content", errors={"content": exc.messages}
        ) from exc
    if kind == "knowledge_point" and clean.get("knowledge_point_id") is None:
        from app.content import service as content_service

        content_service.check_drip_source(content=clean)
    return clean


def check_product(product) -> None:
    """Products that may not be advertised, or are off sale, are refused in cards."""
    if product.is_breastmilk_substitute:
        raise Invalid(
            "Breast-milk substitutes may not be advertised (Advertising Law art. 20).",
            code="breastmilk_substitute_refused",
            errors={"content": {"product_id": ["Refused."]}},
        )
    if not product.is_active:
        raise Invalid(
            "The product is not on sale.", code="product_inactive", errors={"content": {"product_id": ["Inactive."]}}
        )


def snapshot(*, post_id: int, kind: str, content: dict, author_id: int, occurrence_id: int | None = None) -> dict:
    """Freeze what an occurrence sends: the content plus the source objects it names, checked now.

    `occurrence_id` is None for a preview; a drip records under it which point each group got.
    """
    frozen = {"post_id": post_id, "kind": kind, "content": content, "author_id": author_id}
    if kind == "product_card":
        from app.catalog import service as catalog

        product = catalog.get_product(product_id=content["product_id"])
        check_product(product)
        frozen["product"] = {"id": product.id, "title": product.title, "price_fen": product.price_fen}
    if kind == "knowledge_point":
        from app.content import service as content_service

        # A fixed point is frozen here; a drip's point is chosen per group when rendered (None until then).
        frozen["occurrence_id"] = occurrence_id
        frozen["knowledge_point"] = content_service.knowledge_point_snapshot(content=content)
    return frozen


def _fit(text: str, limit_bytes: int) -> str:
    """Cut text to a channel's byte limit on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= limit_bytes:
        return text
    return encoded[: limit_bytes - 3].decode(errors="ignore") + "…"


def _knowledge_text(frozen: dict, *, markdown: bool) -> str:
    point = frozen["knowledge_point"]
    title = f"**{point['title']}**" if markdown else point["title"]
    return _fit(f"{title}\n{point['text']}", MARKDOWN_MAX_BYTES if markdown else TEXT_MAX_BYTES)


@dataclass(frozen=True)
class Card:
    title: str
    description: str
    page: str


def _card(frozen: dict, *, group_id: int, host_id: int) -> Card:
    """Title, text and the mini-program page of a card, with the share code of this group and post."""
    kind, content, post_id = frozen["kind"], frozen["content"], frozen["post_id"]
    if kind == "product_card":
        from app.affiliate import service as affiliate

        product = frozen["product"]
        link = affiliate.create_share_link(
            sharer_id=host_id, product_id=product["id"], group_id=group_id, post_id=post_id, host_id=host_id
        )
        text = (content.get("text") or "") + f" ¥{yuan(product['price_fen'])}"
        return Card(product["title"][:64], text.strip(), link.path)
    if kind == "knowledge_point":
        from app.content import service as content_service

        point = frozen["knowledge_point"]
        path = content_service.knowledge_point_share_path(
            point=point, host_id=host_id, group_id=group_id, post_id=post_id
        )
        return Card(point["title"][:64], point["text"], path)
    if kind == "coupon_drop":
        from app.coupons import service as coupons

        card = coupons.coupon_card(
            template_id=content["template_id"], sharer_id=host_id, group_id=group_id, post_id=post_id
        )
        text = " ".join(t for t in (content.get("text"), card["headline"]) if t)
        return Card(card["title"][:64], text, card["miniprogram"]["page"])
    page = content["page"]
    return Card(
        content["title"],
        content.get("description") or "",
        page + ("&" if "?" in page else "?") + urlencode({"gid": group_id, "pid": post_id}),
    )


def render_robot(frozen: dict, *, group_id: int, host_id: int) -> dict:
    """The WeCom group-robot message (also what a sandbox group records)."""
    kind, content = frozen["kind"], frozen["content"]
    if kind == "text":
        return {"msgtype": "text", "text": {"content": content["text"]}}
    if kind == "markdown":
        return {"msgtype": "markdown", "markdown": {"content": content["markdown"]}}
    if kind == "knowledge_point" and frozen["knowledge_point"]["product_id"] is None:
        return {"msgtype": "markdown", "markdown": {"content": _knowledge_text(frozen, markdown=True)}}
    card = _card(frozen, group_id=group_id, host_id=host_id)
    return {
        "msgtype": "template_card",
        "template_card": {
            "card_type": "text_notice",
            "main_title": {"title": card.title, "desc": card.description[:128]},
            "card_action": {"type": 2, "appid": current_app.config["WECHAT_APPID"], "pagepath": card.page},
        },
    }


def render_customer_group(frozen: dict, *, group_id: int, host_id: int, sender: str, chat_id: str) -> dict:
    """The add_msg_template body: text plus a mini-program attachment for cards (markdown goes as text)."""
    kind, content = frozen["kind"], frozen["content"]
    body: dict = {"chat_type": "group", "sender": sender, "chat_id_list": [chat_id]}
    if kind == "text":
        body["text"] = {"content": content["text"]}
    elif kind == "markdown":
        body["text"] = {"content": content["markdown"]}
    elif kind == "knowledge_point" and frozen["knowledge_point"]["product_id"] is None:
        body["text"] = {"content": _knowledge_text(frozen, markdown=False)}
    else:
        card = _card(frozen, group_id=group_id, host_id=host_id)
        body["text"] = {
            "content": _knowledge_text(frozen, markdown=False)
            if kind == "knowledge_point"
            else card.description or card.title
        }
        miniprogram = {"title": card.title, "appid": current_app.config["WECHAT_APPID"], "page": card.page}
        if content.get("pic_media_id"):
            miniprogram["pic_media_id"] = content["pic_media_id"]
        body["attachments"] = [{"msgtype": "miniprogram", "miniprogram": miniprogram}]
    return body


def render(frozen: dict, *, channel: str, group_id: int, host_id: int, credentials: dict[str, str]) -> dict:
    """The exact payload `channel` receives for this group; Skip when there is nothing to send it."""
    if frozen["kind"] == "knowledge_point":
        from app.content import service as content_service

        point = content_service.knowledge_point_for_group(
            post_id=frozen["post_id"],
            occurrence_id=frozen.get("occurrence_id"),
            content=frozen["content"],
            frozen_point=frozen["knowledge_point"],
            group_id=group_id,
        )
        if point is None:
            raise Skip("drip_nothing_fits", "nothing left in the drip fits the group's age band")
        frozen = {**frozen, "knowledge_point": point}
    if channel == "wecom_customer_group":
        return render_customer_group(
            frozen, group_id=group_id, host_id=host_id, sender=credentials["sender"], chat_id=credentials["chat_id"]
        )
    return render_robot(frozen, group_id=group_id, host_id=host_id)

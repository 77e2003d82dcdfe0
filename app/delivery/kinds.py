"""Post kinds: what each carries, checks, freezes and makes when an occurrence goes out, and the payload per channel.

A kind is one class below (registered by being defined); `of(name)` finds it. Its life with a post:

- `validate(content)` when the post is saved: the content schema, plus checks that need no author;
- `check(content, author=...)` when saved: the source objects in other domains (product, coupon, point);
- `snapshot(content, author=...)` when an occurrence goes out: what every group gets alike, checked again now
  (an ApiError refuses the occurrence);
- `make(snapshot, group=..., post_id=..., occurrence_id=...)` right after, for each group, when the kind has
  something of each group's own (`per_group`): the share code of (group host, item, group, post), the coupon
  share code, the drip's next point. It writes (in other domains), so only the flow that writes the occurrence's
  deliveries calls it (and a preview, making the same codes the occurrence then reuses); Skip: the group gets
  nothing this time.
- `render(...)`: the payload one channel receives, from the occurrence's snapshot alone. It never writes, so the
  workers and the preview render alike and a send can be retried.

Attribution: cards open share codes of (group host, item, group, post), so clicks, claims and orders through a
card credit the group's host, who is the sharer: the bot posts on the host's behalf into the host's group.
Adding a kind is adding a class here; its name must also be allowed by the posts table (`models.POST_KINDS`).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlencode

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.affiliate import service as affiliate
from app.catalog import service as catalog
from app.content import service as content_service
from app.core.access import Actor
from app.core.errors import Conflict, Invalid
from app.core.money import yuan
from app.coupons import service as coupons
from app.delivery.channels import CUSTOMER_GROUP
from app.groups.service import GroupBrief

TEXT_MAX_BYTES = 2048  # WeCom robot text limit
MARKDOWN_MAX_BYTES = 4096  # WeCom robot markdown limit
ID = validate.Range(min=1, max=2**53)


def _max_bytes(limit: int) -> Callable[[str], None]:
    def check(value: str) -> None:
        if len(value.encode()) > limit:
            raise ValidationError(f"At most {limit} bytes in UTF-8.")

    return check


def _picture() -> fields.String:
    return fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "WeCom media id of the card picture (customer groups)."},
    )


class TextContent(Schema):
    text = fields.String(required=True, validate=[validate.Length(min=1), _max_bytes(TEXT_MAX_BYTES)])


class MarkdownContent(Schema):
    markdown = fields.String(required=True, validate=[validate.Length(min=1), _max_bytes(MARKDOWN_MAX_BYTES)])


class MiniProgramContent(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=64))
    description = fields.String(load_default="", validate=validate.Length(max=128))
    page = fields.String(required=True, validate=validate.Length(min=1, max=256))
    pic_media_id = _picture()


class ProductContent(Schema):
    product_id = fields.Integer(required=True, validate=ID)
    text = fields.String(load_default="", validate=validate.Length(max=500))
    pic_media_id = _picture()


class CouponContent(Schema):
    template_id = fields.Integer(required=True, validate=ID)
    text = fields.String(load_default="", validate=validate.Length(max=500))
    pic_media_id = _picture()


class KnowledgePointContent(Schema):
    """One approved knowledge point, or a drip: each time, the next point of a course or topic per group."""

    knowledge_point_id = fields.Integer(validate=ID)
    course_id = fields.Integer(validate=ID)
    topic = fields.String(validate=validate.Length(min=1, max=32))
    pic_media_id = _picture()

    @validates_schema
    def _one_source(self, data, **kwargs):
        if sum(data.get(name) is not None for name in ("knowledge_point_id", "course_id", "topic")) != 1:
            raise ValidationError("Name exactly one of knowledge_point_id, course_id or topic.")


class Skip(Exception):
    """Nothing to send to this group at this occurrence, which is no failure (the delivery ends `skipped`)."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class Card:
    title: str
    description: str
    page: str


def _fit(text: str, limit_bytes: int) -> str:
    """Cut text to a channel's byte limit on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= limit_bytes:
        return text
    return encoded[: limit_bytes - 3].decode(errors="ignore") + "…"


def _with_query(page: str, **params: int) -> str:
    return page + ("&" if "?" in page else "?") + urlencode(params)


def _miniprogram_appid() -> str:
    return current_app.config["WECHAT_APPID"]


class PostKind(ABC):
    """One kind of post. Subclasses set `name` and `content_schema` and say what their messages are."""

    name: ClassVar[str]
    content_schema: ClassVar[type[Schema]]
    # Cards carry a mini-program attachment, which customer groups only take with a picture.
    is_card: ClassVar[bool] = False
    # The kind makes something of each group's own when an occurrence goes out (`make`).
    per_group: ClassVar[bool] = False
    registry: ClassVar[dict[str, "PostKind"]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            PostKind.registry[cls.name] = cls()

    def validate(self, content: dict) -> dict:
        """The content, cleaned by the kind's schema, or 422 `invalid_content` with per-field errors."""
        try:
            return self.content_schema().load(content or {})
        except ValidationError as exc:
            raise Invalid(
                "The content does not fit the post kind.", code="invalid_content", errors={"content": exc.messages}
            ) from exc

    def check(self, content: dict, *, author: Actor) -> int | None:
        """Refuse content whose source objects may not be posted now; returns the product the post advertises."""
        return None

    def snapshot(self, content: dict, *, author: Actor) -> dict:
        """What every group gets alike at an occurrence, checked now (beyond the content itself)."""
        return {}

    def make(self, frozen: dict, *, group: GroupBrief, post_id: int, occurrence_id: int | None) -> dict:
        """Make what this group's message needs (writes; `occurrence_id` is None for a preview); Skip for nothing.

        What several groups share may be filed into `frozen` (the snapshot being written); the result is the
        group's own part, kept in the snapshot under its group id.
        """
        return {}

    def render(self, frozen: dict, *, channel: str, group_id: int, credentials: dict[str, str]) -> dict:
        """The exact payload `channel` receives for this group (reads only the snapshot)."""
        made = frozen.get("groups", {}).get(str(group_id))
        if made is None and self.per_group:
            raise Invalid("Nothing was made for this group when the occurrence went out.", code="message_not_made")
        if channel == CUSTOMER_GROUP:
            head = {"chat_type": "group", "sender": credentials["sender"], "chat_id_list": [credentials["chat_id"]]}
            return head | self.customer_group_message(frozen, made or {}, group_id=group_id)
        return self.robot_message(frozen, made or {}, group_id=group_id)

    @abstractmethod
    def robot_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        """The WeCom group-robot message (also what a sandbox group records)."""

    @abstractmethod
    def customer_group_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        """The message part of an add_msg_template body (text and attachments)."""


def of(name: str) -> PostKind:
    """The kind called `name`, or 422 `post_kind_unavailable`."""
    kind = PostKind.registry.get(name)
    if kind is None:
        raise Invalid(f"Posts of kind '{name}' are not available yet.", code="post_kind_unavailable")
    return kind


def names() -> list[str]:
    """Every kind's name, sorted."""
    return sorted(PostKind.registry)


def content_help() -> str:
    """What `content` holds for each kind (the API's description of the field)."""
    return "; ".join(f"{name}: {{{', '.join(of(name).content_schema().fields)}}}" for name in names()) + "."


def render(frozen: dict, *, channel: str, group_id: int, credentials: dict[str, str]) -> dict:
    """The payload `channel` receives for this group at the occurrence frozen in `frozen`."""
    return of(frozen["kind"]).render(frozen, channel=channel, group_id=group_id, credentials=credentials)


class TextKind(PostKind):
    name = "text"
    content_schema = TextContent

    def robot_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        return {"msgtype": "text", "text": {"content": frozen["content"]["text"]}}

    def customer_group_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        return {"text": {"content": frozen["content"]["text"]}}


class MarkdownKind(PostKind):
    name = "markdown"
    content_schema = MarkdownContent

    def robot_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        return {"msgtype": "markdown", "markdown": {"content": frozen["content"]["markdown"]}}

    def customer_group_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        # Customer groups take no markdown: the source goes as text.
        return {"text": {"content": frozen["content"]["markdown"]}}


class CardKind(PostKind):
    """A card opening a mini-program page: a template card for robots, text plus a mini-program attachment else."""

    is_card = True

    @abstractmethod
    def card(self, frozen: dict, made: dict, *, group_id: int) -> Card:
        """Title, text and the mini-program page the card opens."""

    def customer_text(self, frozen: dict, made: dict, card: Card) -> str:
        return card.description or card.title

    def robot_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        card = self.card(frozen, made, group_id=group_id)
        return {
            "msgtype": "template_card",
            "template_card": {
                "card_type": "text_notice",
                "main_title": {"title": card.title, "desc": card.description[:128]},
                "card_action": {"type": 2, "appid": _miniprogram_appid(), "pagepath": card.page},
            },
        }

    def customer_group_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        card = self.card(frozen, made, group_id=group_id)
        miniprogram = {"title": card.title, "appid": _miniprogram_appid(), "page": card.page}
        if frozen["content"].get("pic_media_id"):
            miniprogram["pic_media_id"] = frozen["content"]["pic_media_id"]
        return {
            "text": {"content": self.customer_text(frozen, made, card)},
            "attachments": [{"msgtype": "miniprogram", "miniprogram": miniprogram}],
        }


class MiniProgramCardKind(CardKind):
    """Any mini-program page; the page learns the group and post from `gid` and `pid`."""

    name = "miniprogram_card"
    content_schema = MiniProgramContent

    def card(self, frozen: dict, made: dict, *, group_id: int) -> Card:
        content = frozen["content"]
        return Card(
            content["title"],
            content.get("description") or "",
            _with_query(content["page"], gid=group_id, pid=frozen["post_id"]),
        )


def _on_sale_card(product_id: int) -> dict:
    """The product's card (title, price) while it is on sale and may be advertised (404 unknown, 422 otherwise)."""
    catalog.get_product(product_id=product_id)
    catalog.require_advertisable(product_ids=[product_id])
    card = catalog.product_cards(product_ids=[product_id]).get(product_id)
    if card is None:
        raise Invalid(
            "The product is not on sale.", code="product_inactive", errors={"content": {"product_id": ["Inactive."]}}
        )
    return card


class ProductCardKind(CardKind):
    """A product, opening the host's share link for it in this group and post."""

    name = "product_card"
    content_schema = ProductContent
    per_group = True

    def check(self, content: dict, *, author: Actor) -> int | None:
        return _on_sale_card(content["product_id"])["product_id"]

    def snapshot(self, content: dict, *, author: Actor) -> dict:
        card = _on_sale_card(content["product_id"])
        return {"product": {"id": card["product_id"], "title": card["title"], "price_fen": card["price_fen"]}}

    def make(self, frozen: dict, *, group: GroupBrief, post_id: int, occurrence_id: int | None) -> dict:
        link = affiliate.create_share_link(
            sharer_id=group.host_id,
            product_id=frozen["product"]["id"],
            group_id=group.id,
            post_id=post_id,
            host_id=group.host_id,
        )
        return {"page": link.path}

    def card(self, frozen: dict, made: dict, *, group_id: int) -> Card:
        product = frozen["product"]
        text = (frozen["content"].get("text") or "") + f" ¥{yuan(product['price_fen'])}"
        return Card(product["title"][:64], text.strip(), made["page"])


class CouponDropKind(CardKind):
    """A live coupon, opening its claim page with the host's share code for this group and post."""

    name = "coupon_drop"
    content_schema = CouponContent
    per_group = True

    def check(self, content: dict, *, author: Actor) -> int | None:
        status = coupons.droppable_status(template_id=content["template_id"], actor=author)
        if status in ("draft", "ended"):
            raise Conflict(
                "Only live coupons can be dropped into groups.",
                code="coupon_not_shareable",
                errors={"content": {"template_id": [f"The coupon is {status}."]}},
            )
        return None

    def make(self, frozen: dict, *, group: GroupBrief, post_id: int, occurrence_id: int | None) -> dict:
        card = coupons.coupon_card(
            template_id=frozen["content"]["template_id"], sharer_id=group.host_id, group_id=group.id, post_id=post_id
        )
        return {"title": card["title"], "headline": card["headline"], "page": card["miniprogram"]["page"]}

    def card(self, frozen: dict, made: dict, *, group_id: int) -> Card:
        text = " ".join(t for t in (frozen["content"].get("text"), made["headline"]) if t)
        return Card(made["title"][:64], text, made["page"])


class KnowledgePointKind(CardKind):
    """A partner's knowledge point: markdown, or a card opening the host's share link for its first product
    (crediting the partner's content share). A fixed point is frozen with the occurrence; a drip (a course or
    topic) gives each group its next point that fits, chosen and recorded when the occurrence goes out."""

    name = "knowledge_point"
    content_schema = KnowledgePointContent
    is_card = False  # a card only when the point names a product; the picture stays optional
    per_group = True

    def validate(self, content: dict) -> dict:
        clean = super().validate(content)
        if clean.get("knowledge_point_id") is None:
            content_service.check_drip_source(content=clean)
        return clean

    def check(self, content: dict, *, author: Actor) -> int | None:
        if content.get("knowledge_point_id") is not None:
            content_service.check_postable_point(knowledge_point_id=content["knowledge_point_id"])
        return None

    def snapshot(self, content: dict, *, author: Actor) -> dict:
        if content.get("knowledge_point_id") is None:
            return {"points": {}}
        point = content_service.postable_point(knowledge_point_id=content["knowledge_point_id"])
        return {"points": {str(point["id"]): point}}

    def make(self, frozen: dict, *, group: GroupBrief, post_id: int, occurrence_id: int | None) -> dict:
        fixed = frozen["content"].get("knowledge_point_id")
        if fixed is not None:
            point = frozen["points"][str(fixed)]
            if occurrence_id is not None:
                content_service.record_point_sent(
                    post_id=post_id, occurrence_id=occurrence_id, group_id=group.id, point_id=point["id"]
                )
        else:
            point = content_service.next_drip_point(
                post_id=post_id,
                occurrence_id=occurrence_id,
                content=frozen["content"],
                group_id=group.id,
                age_band=group.age_band,
            )
            if point is None:
                raise Skip("drip_nothing_fits", "nothing left in the drip fits the group's age band")
            frozen["points"].setdefault(str(point["id"]), point)
        made = {"point_id": point["id"]}
        if point["product_id"] is not None:
            link = affiliate.create_share_link(
                sharer_id=group.host_id,
                product_id=point["product_id"],
                group_id=group.id,
                post_id=post_id,
                host_id=group.host_id,
                content_id=content_service.knowledge_point_content_id(point=point),
                content_author_id=point["partner_id"],
            )
            made["page"] = link.path
        return made

    @staticmethod
    def _point(frozen: dict, made: dict) -> dict:
        return frozen["points"][str(made["point_id"])]

    @staticmethod
    def _text(point: dict, *, markdown: bool) -> str:
        title = f"**{point['title']}**" if markdown else point["title"]
        return _fit(f"{title}\n{point['text']}", MARKDOWN_MAX_BYTES if markdown else TEXT_MAX_BYTES)

    def card(self, frozen: dict, made: dict, *, group_id: int) -> Card:
        point = self._point(frozen, made)
        return Card(point["title"][:64], point["text"], made["page"])

    def customer_text(self, frozen: dict, made: dict, card: Card) -> str:
        return self._text(self._point(frozen, made), markdown=False)

    def robot_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        if "page" in made:
            return super().robot_message(frozen, made, group_id=group_id)
        return {"msgtype": "markdown", "markdown": {"content": self._text(self._point(frozen, made), markdown=True)}}

    def customer_group_message(self, frozen: dict, made: dict, *, group_id: int) -> dict:
        if "page" in made:
            return super().customer_group_message(frozen, made, group_id=group_id)
        return {"text": {"content": self._text(self._point(frozen, made), markdown=False)}}

"""Member-post use cases that also write share links (affiliate): each runs in its edge's one transaction.

A published post's cards are the author's own share links for its products, crediting her content share; a
member sharing someone's post gets links of her own with the author kept as the content's author.
"""

from app.affiliate import service as affiliate
from app.content import revenue, ugc
from app.content.models import MemberPost


def _share_codes(post: MemberPost, *, sharer_id: int) -> list[str]:
    """The sharer's code for each of the post's products (in its order), crediting the author's content share."""
    content_id = revenue.content_item_id(kind="member_post", ref_id=post.id, author_id=post.author_id)
    return [
        affiliate.create_share_link(
            sharer_id=sharer_id, product_id=product_id, content_id=content_id, content_author_id=post.author_id
        ).code
        for product_id in post.product_ids
    ]


def create_member_post(
    *, author_id: int, values: dict, publish: bool, accept_license_version: str | None
) -> MemberPost:
    """Write a post: a draft, or published at once (safety check, licence) with the author's share codes."""
    post = ugc.create_post(
        author_id=author_id, values=values, publish=publish, accept_license_version=accept_license_version
    )
    if publish:
        post.share_codes = _share_codes(post, sharer_id=author_id)
    return post


def publish_member_post(*, post_id: int, author_id: int, accept_license_version: str | None) -> MemberPost:
    """Publish one's own draft or rejected post, with the author's share codes for its products."""
    post = ugc.publish_post(post_id=post_id, author_id=author_id, accept_license_version=accept_license_version)
    post.share_codes = _share_codes(post, sharer_id=author_id)
    return post


def share_member_post(*, post_id: int, sharer_id: int) -> list[dict]:
    """A member's own share codes for a visible post's products: her commission, the author's content share."""
    post = ugc.shareable_post(post_id=post_id)
    codes = _share_codes(post, sharer_id=sharer_id)
    return [{"product_id": product_id, "share_code": code} for product_id, code in zip(post.product_ids, codes)]

"""HTML allow-lists (nh3): partner rich text, members' post text, and plain text fields.

Everything stored is safe to insert into HTML as is: plain text keeps no tags and has its entities escaped
("a < b" is stored as "a &lt; b"), so a client rendering it as HTML shows the same characters.
"""

import nh3

URL_SCHEMES = {"http", "https"}
RICH_TAGS = {
    "p",
    "br",
    "strong",
    "b",
    "em",
    "i",
    "u",
    "s",
    "ul",
    "ol",
    "li",
    "h2",
    "h3",
    "h4",
    "blockquote",
    "a",
    "img",
    "span",
    "sup",
    "sub",
    "hr",
}
RICH_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}
POST_TAGS = {"p", "br", "strong", "b", "em", "i"}


def rich_text(html: str) -> str:
    """Partner body text: formatting, links and images kept; scripts, handlers, styles and other schemes removed."""
    return nh3.clean(
        html,
        tags=RICH_TAGS,
        attributes=RICH_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    ).strip()


def post_text(html: str) -> str:
    """A member's post: paragraphs and emphasis only."""
    return nh3.clean(html, tags=POST_TAGS, attributes={}, url_schemes=URL_SCHEMES).strip()


def plain_text(text: str) -> str:
    """Titles and names: no markup at all."""
    return nh3.clean(text, tags=set(), attributes={}).strip()


def plain_list(values: list[str]) -> list[str]:
    """Tags: each one plain, blanks dropped, duplicates removed (first kept)."""
    seen: dict[str, None] = {}
    for value in values:
        cleaned = plain_text(value)
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)

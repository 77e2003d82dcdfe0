"""Keyword search over product titles and merchants: a substring match that an index can serve.

Chinese has no spaces and its keywords are often one or two characters (牙刷, 奶瓶, 米粉), so neither word
tokenisers nor pg_trgm help: pg_trgm takes no trigram from a two-character LIKE pattern and scans its whole
index. Instead every product keeps `search_tokens`: the character unigrams and bigrams of its lowercased title
and merchant, within each run of non-space characters. Any text containing a keyword contains every bigram
of the keyword (its one character, for a one-character keyword), so on PostgreSQL `search_tokens @> those`
through a GIN index finds a superset of the matches, and the substring match (ILIKE) then decides exactly.
The planner weighs the GIN lookup against walking the sort order's index and filtering, so a keyword that
matches a hundred thousand products costs about one page of rows, and a rare one costs its few matches.
SQLite (the embedded default) matches with LIKE alone.
"""
from typing import Any, Sequence

from sqlalchemy import ColumnElement, Select, Text, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from app.core.pagination import after_cursor

# A keyword's bigrams beyond these narrow the index lookup no further worth the work; the match re-checks all.
QUERY_TOKENS_MAX = 8
# How far a page walks the sort order looking for matches before it asks the token index for all of them:
# a keyword matching more than about 1 row in WALK_ROWS / page size fills its page within the walk; a rarer one
# has fewer than about (rows in the table) × page size / WALK_ROWS matches, which the GIN lookup fetches.
WALK_ROWS = 2000


def _runs(text: str) -> list[str]:
    return text.lower().split()


def _grams(run: str) -> set[str]:
    return set(run) | {run[i:i + 2] for i in range(len(run) - 1)}


def search_tokens(*texts: str | None) -> list[str]:
    """The index tokens of a product's searchable texts (title, merchant): unigrams and bigrams, sorted."""
    tokens: set[str] = set()
    for text in texts:
        for run in _runs(text or ""):
            tokens |= _grams(run)
    return sorted(tokens)


def keyword_tokens(keyword: str) -> list[str]:
    """Tokens every text containing `keyword` has: its bigrams (a lone character stands for itself)."""
    wanted: list[str] = []
    for run in _runs(keyword):
        grams = [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
        wanted += [g for g in grams if g not in wanted]
    if len(wanted) <= QUERY_TOKENS_MAX:
        return wanted
    step = len(wanted) / QUERY_TOKENS_MAX
    return [wanted[int(i * step)] for i in range(QUERY_TOKENS_MAX)]


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def keyword_match(model, keyword: str) -> ColumnElement[bool]:
    """The exact rule: the title or the merchant contains `keyword`, ignoring case."""
    pattern = _like_pattern(keyword)
    return model.title.ilike(pattern, escape="\\") | model.merchant.ilike(pattern, escape="\\")


def _ordered(stmt: Select, columns: Sequence[Any], descending: bool, limit: int) -> Select:
    return stmt.order_by(*[c.desc() if descending else c.asc() for c in columns]).limit(limit)


def matching_page(model, *, filters: list[ColumnElement[bool]], keyword: str, columns: Sequence[Any],
                  after: Sequence[Any] | None, descending: bool, limit: int, session) -> list:
    """Up to `limit` rows passing `filters` and containing `keyword`, in the order of `columns`, after `after`.

    PostgreSQL only. First the sort order's index is walked for WALK_ROWS rows past the cursor (work bounded
    whatever the keyword); a keyword too rare to fill the page there is looked up through the token index,
    whose candidates are all fetched (few, as the walk showed) and then sorted.
    """
    if after is not None:
        filters = [*filters, after_cursor(columns, after, descending=descending)]
    window = _ordered(select(model).where(*filters), columns, descending, WALK_ROWS).subquery()
    walked = aliased(model, window)
    walked_columns = [getattr(walked, c.key) for c in columns]
    rows = list(session.scalars(_ordered(select(walked).where(keyword_match(walked, keyword)), walked_columns,
                                         descending, limit)))
    if len(rows) == limit:
        return rows
    tokens = keyword_tokens(keyword)
    indexed = [type_coerce(model.search_tokens, ARRAY(Text)).contains(tokens)] if tokens else []
    # Materialised, so the planner cannot turn the lookup back into a walk of the sort order.
    found = (select(*{c.key: c for c in (model.id, *columns)}.values()).where(*filters, *indexed, keyword_match(model, keyword))
             .cte("found").prefix_with("MATERIALIZED"))
    top = _ordered(select(found.c.id), [found.c[c.key] for c in columns], descending, limit).subquery()
    return list(session.scalars(_ordered(select(model).join(top, top.c.id == model.id), columns, descending, limit)))

"""Search tokens: the character unigrams and bigrams a product is found by (see app.catalog.search).

Chinese has no spaces and its keywords are often one or two characters (牙刷, 奶瓶, 米粉), so neither word
tokenisers nor pg_trgm help: pg_trgm takes no trigram from a two-character LIKE pattern and scans its whole
index. A product's tokens are the unigrams and bigrams of its lowercased title and merchant, within each run
of non-space characters; any text containing a keyword contains every bigram of the keyword (its character,
for a one-character keyword). So `search_tokens @> keyword_tokens(k)` holds for every product matching `k`,
and the substring match decides exactly among the few that pass.
"""

# A keyword's bigrams beyond these narrow the index lookup no further worth the work; the match re-checks all.
QUERY_TOKENS_MAX = 8


def _runs(text: str) -> list[str]:
    return text.lower().split()


def search_tokens(*texts: str | None) -> list[str]:
    """The index tokens of a product's searchable texts (title, merchant): unigrams and bigrams, sorted."""
    tokens: set[str] = set()
    for text in texts:
        for run in _runs(text or ""):
            tokens |= set(run) | {run[i : i + 2] for i in range(len(run) - 1)}
    return sorted(tokens)


def keyword_tokens(keyword: str) -> list[str]:
    """Tokens every text containing `keyword` has: its bigrams (a lone character stands for itself)."""
    wanted: list[str] = []
    for run in _runs(keyword):
        grams = [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]
        wanted += [g for g in grams if g not in wanted]
    if len(wanted) <= QUERY_TOKENS_MAX:
        return wanted
    step = len(wanted) / QUERY_TOKENS_MAX
    return [wanted[int(i * step)] for i in range(QUERY_TOKENS_MAX)]

"""Products and categories: union (affiliate feed) and own (our checkout) products."""

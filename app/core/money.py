"""Money is integer fen; rates are basis points. No floats come near either."""

BP_DENOMINATOR = 10_000
FEN_PER_YUAN = 100


def share_of(base_fen: int, rate_bp: int) -> int:
    """Return floor(base × rate / 10000): the platform keeps every remainder."""
    if base_fen < 0 or rate_bp < 0:
        raise ValueError("shares are computed on non-negative amounts and rates")
    return base_fen * rate_bp // BP_DENOMINATOR


def yuan(fen: int) -> str:
    """Format fen as a yuan string for display (never for arithmetic)."""
    sign = "-" if fen < 0 else ""
    whole, part = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{part:02d}"

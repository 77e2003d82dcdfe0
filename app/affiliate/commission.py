"""The commission split of one paid amount: pure integer arithmetic, documented and tested.

The seller pays `seller_bp` of the paid amount. Each present party's share is floor(paid × bp / 10000).
If the shares together exceed the seller's commission they are scaled down, each floor(share × commission
/ total), so the platform keeps ≥ 0. A party that is absent (no level-2 inviter, no group host, no
content author, or level-2 switched off) gets nothing and its share stays with the platform. The
platform keeps the rest of the seller's commission, remainders of every floor included.
"""

from dataclasses import dataclass

from app.core.money import share_of

SHARES = ("level1", "level2", "host", "content")


@dataclass(frozen=True)
class Split:
    seller_fen: int
    level1_fen: int
    level2_fen: int
    host_fen: int
    content_fen: int

    @property
    def platform_fen(self) -> int:
        return self.seller_fen - self.level1_fen - self.level2_fen - self.host_fen - self.content_fen

    def amount(self, share: str) -> int:
        return getattr(self, f"{share}_fen")


def split(*, paid_fen: int, seller_bp: int, level1_bp: int, level2_bp: int, host_bp: int, content_bp: int) -> Split:
    """Split the seller's commission on `paid_fen` among the shares whose rate is non-zero."""
    seller = share_of(paid_fen, seller_bp)
    raw = [share_of(paid_fen, bp) for bp in (level1_bp, level2_bp, host_bp, content_bp)]
    total = sum(raw)
    if total > seller:
        raw = [amount * seller // total for amount in raw]
    return Split(seller, *raw)


def reversed_share(*, share_fen: int, paid_fen: int, refunded_fen: int) -> int:
    """How much of a share is reversed once `refunded_fen` of `paid_fen` is refunded (cumulative, floored)."""
    if paid_fen <= 0:
        return 0
    if refunded_fen >= paid_fen:
        return share_fen
    return share_fen * refunded_fen // paid_fen

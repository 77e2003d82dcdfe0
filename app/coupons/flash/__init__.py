"""Flash drops: claims decided in Redis alone, landed in the database a moment later.

- `gate`: the Redis gate that decides each claim of a Redis-gated template in one Lua call.
- `id_pool`: coupon ids reserved from the database's sequence, so a granted coupon has its id at once.
- `drain`: lands the claim stream in the database in batches (and lands a user's claims before reads).
- `loading`: builds a template's gate from the database, and reconciles the two after crashes.
- `lane`: the claim route's WSGI fast path in front of Flask.
"""

"""The double-entry, append-only commission ledger: accounts, journals, lines, balances, settlement."""

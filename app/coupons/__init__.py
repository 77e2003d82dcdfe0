"""Coupons: templates, budgets, flash claims behind a Redis gate, the user's wallet, pricing and cards."""

"""Shared plumbing: config, stores, errors, access rules, clock, money, processes."""

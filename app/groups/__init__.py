"""Institutions, classes, chat groups, members, group roles, invites and the fan ladder."""

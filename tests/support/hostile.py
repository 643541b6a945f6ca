"""Hostile values the security tests put where people's text goes."""

SCRIPT = '<script>alert("x")</script>'

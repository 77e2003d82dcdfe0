"""Share links, clicks, commission rules, attribution and earnings."""

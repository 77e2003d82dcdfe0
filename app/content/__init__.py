"""Partner content, its review and drip posting; member posts (UGC), their safety checks and feeds."""

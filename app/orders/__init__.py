"""Orders in: the signed webhook, statement-file import and the own checkout, through one ingestion path."""

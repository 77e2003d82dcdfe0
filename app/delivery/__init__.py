"""Posts, schedules, occurrences and the exactly-once fan-out of deliveries into groups over channels."""

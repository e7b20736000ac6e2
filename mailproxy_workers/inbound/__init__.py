"""Mail that comes back: bounces (DSN) and PEC receipts, parsed from raw bytes."""

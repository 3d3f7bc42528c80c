"""Sessions to prompt rows: the one renderer, the teachers' reference rationales, the parquet prompt store."""

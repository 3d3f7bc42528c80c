"""Raw logs to line records: text and columnar readers, line formats (regex too), template tables, label patches."""

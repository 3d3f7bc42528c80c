"""Parsed lines grouped into labelled sessions (line, time and block windows), and the splits."""

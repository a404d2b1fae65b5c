"""Benchmarks: each writes its figures side by side in one run, to a JSON and a Markdown file."""

"""The executor service room."""

"""The notifier service room."""

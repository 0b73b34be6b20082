"""Test helpers shared across tiers: row factories and waiting."""

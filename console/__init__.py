"""virtdeck console package."""

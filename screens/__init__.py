"""virtdeck screens package."""

"""virtdeck backends package."""

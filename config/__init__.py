"""virtdeck config package."""

"""The deployment settings' fields, one module per area; ``server/settings.py`` assembles ``Settings``."""

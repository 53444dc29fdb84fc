"""The deployment's classification levels: the built-in ones, or a levels file, and a default level."""

from __future__ import annotations

import json

from policies.levels import DEFAULT_LEVELS, Levels, load_levels
from sandbox_api.server.settings import Settings


def deployment_levels(settings: Settings) -> Levels:
    """Read once when the app is built (ScopeInvalid names what is wrong with a levels file)."""
    levels = DEFAULT_LEVELS
    path = settings.classification_levels_file
    if path is not None:
        levels = load_levels(
            path.read_text(encoding="utf-8"), fmt="json" if path.suffix == ".json" else "yaml"
        )
    if settings.classification_default_level is not None:
        # Through the same validation as a file: a default the levels do not define is refused.
        document = {**levels.model_dump(mode="json"), "default": settings.classification_default_level}
        levels = load_levels(json.dumps(document), fmt="json")
    return levels

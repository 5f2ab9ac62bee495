"""Readers: every layout becomes a :class:`~geopurify.io.scene.Scene`."""

from .scene import Frame, Scene

__all__ = ["Frame", "Scene"]

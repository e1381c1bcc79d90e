"""HandBrake2Resilio: keeps one verified HandBrake transcode of every video in a Resilio folder."""

__version__ = "0.1.0"

"""Personalized reels: a user's ranked titles cut into a trailer (edit list, OTIO, ffmpeg)."""

from tastebud.reels.catalogue import Catalogue, Clip, parse_catalogue, parse_fps, read_catalogue
from tastebud.reels.compose import Plan, Shot, plan_reel
from tastebud.reels.service import Reel, ReelRequest, ReelService

__all__ = [
    "Catalogue",
    "Clip",
    "Plan",
    "Reel",
    "ReelRequest",
    "ReelService",
    "Shot",
    "parse_catalogue",
    "parse_fps",
    "plan_reel",
    "read_catalogue",
]

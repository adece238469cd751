"""Response models of the web API: they document the JSON in /docs and validate what is sent.

``RecognizeResponse`` is the ``landmark-finder recognize --json`` object plus the web-only
keys; ``extra="allow"`` lets keys the library adds later pass through instead of being
silently dropped, so the API and the CLI cannot drift apart. Records the library already
defines as dataclasses (:class:`~landmark_finder.core.places.Place`) are used as they are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from landmark_finder.core.places import Place


class GeoPointOut(BaseModel):
    latitude: float = Field(description="WGS84 degrees")
    longitude: float = Field(description="WGS84 degrees")


class LandmarkBrief(BaseModel):
    """The landmark as ``recognize --json`` reports it."""

    id: str
    name: str
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    names: dict[str, str] = Field(
        default_factory=dict, description="Names by language (the catalog's name_<lang> columns)"
    )


class CandidateOut(BaseModel):
    id: str
    name: str
    names: dict[str, str] = Field(default_factory=dict, description="Names by language")
    score: float = Field(
        description="Aggregated cosine similarity of the landmark's best reference photos, plus "
        "the inlier bonus when verified"
    )
    inliers: int | None = Field(
        None,
        description="Geometrically consistent keypoint matches with its best reference photo; "
        "absent when not verified",
    )


class EvidenceOut(BaseModel):
    reference_image: str | None = Field(
        description="URL of the top candidate's best-matching reference photo"
    )
    inliers: int | None = Field(
        description="Keypoint matches consistent with one homography; null when not verified"
    )
    global_similarity: float = Field(
        description="Cosine similarity of the upload's and that photo's descriptors"
    )


class SiteOut(BaseModel):
    name: str = Field(description="The site (landmarks standing together) the photo shows")
    members: list[str] = Field(description="Landmark ids of the site, most likely first")
    confidence: float = Field(description="Calibrated probability that the photo shows the site")


class RecognizeResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    image: str = Field(description="Name of the uploaded file")
    status: Literal["recognized", "site", "unknown", "error"] = Field(
        description="site: sure of the site, not of which of its members (see `site`)"
    )
    landmark: LandmarkBrief | None = Field(
        description="The answer; null when the photo shows no landmark the index knows"
    )
    confidence: float = Field(description="Calibrated probability that the top candidate is right")
    candidates: list[CandidateOut] = Field(description="Best guesses, best first")
    evidence: EvidenceOut | None = Field(
        None, description="Why the top candidate: its best-matching reference photo"
    )
    verified: bool = Field(
        False, description="Whether the top candidates were verified geometrically"
    )
    site: SiteOut | None = Field(
        None, description="When the top candidate stands in a site with other landmarks"
    )
    error: str | None = None
    reason: str | None = Field(
        None,
        description="Why the answer is unknown: a content check (blank, noise, tiny, fully "
        "transparent image) or a confidence below the threshold; null when recognized",
    )
    reference_image_url: str | None = Field(
        None, description="The top candidate's reference photo most similar to the upload"
    )
    exif_gps: GeoPointOut | None = Field(
        None, description="Position tagged in the upload's EXIF, if any"
    )
    distance_km: float | None = Field(
        None, description="Great-circle distance from the EXIF position to the recognized landmark"
    )
    exif_place: Place | None = Field(
        None, description="City and country of the EXIF position (offline GeoNames gazetteer)"
    )
    heatmap_url: str | None = Field(
        None,
        description="PNG of the photo regions that drove the match (short-lived), when available",
    )


class LandmarkOut(LandmarkBrief):
    description: str = ""
    url: str = ""
    addresses: dict[str, str] = Field(default_factory=dict, description="Addresses by language")
    wikidata: str = Field("", description="Wikidata item id (Q...), when known")
    country: str = ""
    site: str = Field("", description="Group of landmarks standing together, if any")
    photo_count: int = Field(
        description="Reference photos in the index (0: listed but never predicted)"
    )


class LandmarkDetail(LandmarkOut):
    photo_urls: list[str] = Field(description="Reference photos of this landmark")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    backbone: str
    landmarks: int = Field(description="Landmarks with at least one reference photo")
    catalog_rows: int
    photos: int
    index_created: str
    admin_enabled: bool
    heatmaps: bool = Field(description="Whether /api/recognize can return a heatmap_url")
    max_upload_bytes: int = Field(description="Largest photo /api/recognize accepts")


class PhotosChanged(BaseModel):
    """Result of adding or removing reference photos."""

    landmark: LandmarkOut
    added: int = 0
    removed: int = 0
    skipped: list[str] = Field(default_factory=list, description="Photos not added, one line each")
    warnings: list[str] = Field(default_factory=list)
    index_photos: int
    index_landmarks: int
    model_refitted: bool = Field(
        False,
        description="Whether the change refitted the decision model (small changes keep it)",
    )


class ErrorOut(BaseModel):
    detail: str

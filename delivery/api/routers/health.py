"""Liveness: `GET /healthz` answers while the process serves requests."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """`{"status": "ok"}`: the event loop is answering. Queue depth is `/metrics`' business."""
    return {"status": "ok"}

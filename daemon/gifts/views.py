"""A gift as the local API shows it."""

from __future__ import annotations

import json
from typing import Any


def transfer_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "month": row["month"],
        "creator": row["creator"],
        "url": row["url"],
        "title": row["title"],
        "note": row["note"],
        "cents": row["cents"],
        "state": row["state"],
        "error": row["error"],
        "message": row["message"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"],
        "receipt": json.loads(row["receipt"]) if row["receipt"] else None,
        "receipt_signature": row["receipt_signature"],
        "created_at": row["created_at"],
        "given_at": row["given_at"],
        "unlinkable": bool(row["unlinkable"]),
        "from_browser": bool(row["from_browser"]),
    }

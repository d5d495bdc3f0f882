"""``/patches/{id}/photos``: field photos (现场照片) for a review, stored under the data dir.

Upload a photo first, then send the returned ``ref`` in the ``photos`` list of ``POST /patches/{id}/reviews``.
Only JPEG, PNG and WebP are taken (checked by their first bytes, not by the name), at most
:data:`MAX_PHOTO_BYTES` each; files are named by a random id, never by the uploaded name.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from service.api.deps import SettingsDep, owned, require_role
from service.api.problems import problem_responses
from service.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from service.models import Patch, User
from service.vocab import Role

__all__ = ["router", "PhotoPublic", "MAX_PHOTO_BYTES"]

router = APIRouter(prefix="/patches", tags=["patches"])
Reader = Annotated[User, Depends(require_role(Role.viewer))]
Inspector = Annotated[User, Depends(require_role(Role.inspector))]
OwnedPatch = Annotated[Patch, Depends(owned(Patch, "patch_id"))]
MAX_PHOTO_BYTES = 20 * 1024 * 1024
_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp)$")
_MEDIA = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_CHUNK = 1024 * 1024


class PhotoPublic(BaseModel):
    ref: str = Field(description="Send this in the review's photos list", examples=["photo:3f2a….jpg"])
    url: str = Field(description="Where to GET the photo (with your token)")
    media_type: str = Field(examples=["image/jpeg"])
    size_bytes: int
    filename: str = Field(description="The uploaded file's name, for display only")


def _kind(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


@router.post("/{patch_id}/photos", response_model=PhotoPublic, status_code=201,
             summary="Upload a field photo for a review (JPEG, PNG or WebP)",
             responses=problem_responses(400, 403, 413))  # fmt: skip
def upload_photo(
    user: Inspector,
    patch: OwnedPatch,
    request: Request,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=f"JPEG, PNG or WebP, at most {MAX_PHOTO_BYTES // 2**20} MiB")],
) -> PhotoPublic:
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_PHOTO_BYTES + 64 * 1024:
        raise PayloadTooLargeError(f"photo upload of {declared:,} bytes is over the limit of {MAX_PHOTO_BYTES:,}")
    head = file.file.read(16)
    kind = _kind(head)
    if kind is None:
        raise InvalidInputError(f"{file.filename!r} is not a JPEG, PNG or WebP photo; convert it and upload again")
    folder = settings.data_dir / "photos" / str(patch.id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.{kind}"
    tmp, size = folder / f".{name}.part", len(head)
    try:
        with tmp.open("wb") as out:
            out.write(head)
            while chunk := file.file.read(_CHUNK):
                size += len(chunk)
                if size > MAX_PHOTO_BYTES:
                    raise PayloadTooLargeError(
                        f"{file.filename!r} is larger than {MAX_PHOTO_BYTES:,} bytes; send a smaller photo",
                        limit_bytes=MAX_PHOTO_BYTES,
                    )
                out.write(chunk)
        tmp.replace(folder / name)
    finally:
        tmp.unlink(missing_ok=True)
    return PhotoPublic(ref=f"photo:{name}", url=f"/api/v1/patches/{patch.id}/photos/{name}", media_type=_MEDIA[kind],
                       size_bytes=size, filename=(file.filename or name)[:200])  # fmt: skip


@router.get("/{patch_id}/photos/{photo_name}", response_class=FileResponse, summary="A field photo of a patch",
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}})  # fmt: skip
def read_photo(
    user: Reader,
    patch: OwnedPatch,
    settings: SettingsDep,
    photo_name: Annotated[str, Path(max_length=40)],
) -> FileResponse:
    path = settings.data_dir / "photos" / str(patch.id) / photo_name
    if not _NAME.match(photo_name) or not path.is_file():
        raise NotFoundError(f"photo {photo_name!r} of patch {patch.id} not found")
    return FileResponse(path, media_type=_MEDIA[photo_name.rsplit(".", 1)[1]],
                        headers={"Cache-Control": "private, max-age=86400"})  # fmt: skip

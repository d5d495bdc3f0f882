"""Safe handling of uploaded files: streamed to disk with a size limit, zips unpacked defensively."""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

from service.errors import ImportFormatError, PayloadTooLargeError, UnsafeArchiveError

__all__ = ["save_stream", "safe_extract", "check_zip", "MAX_MEMBERS"]

MAX_MEMBERS = 2000
_CHUNK = 1024 * 1024
_RATIO_FLOOR_BYTES = 4 * 1024 * 1024  # tiny members may compress extremely well; only police bigger ones


async def save_stream(chunks: AsyncIterator[bytes], dest: Path, max_bytes: int, what: str) -> int:
    """Write ``chunks`` to ``dest``, stopping (and deleting it) past ``max_bytes``; returns the size."""
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                out.close()
                dest.unlink(missing_ok=True)
                raise PayloadTooLargeError(
                    f"{what} is larger than the limit of {max_bytes:,} bytes; split it or raise the limit setting",
                    limit_bytes=max_bytes,
                )
            out.write(chunk)
    return size


def safe_extract(archive: Path, dest: Path, *, max_total_bytes: int, max_ratio: float) -> list[Path]:
    """Unpack ``archive`` into ``dest`` and return the extracted files.

    Rejects (:class:`UnsafeArchiveError`) absolute paths and ``..`` components, links, more than
    :data:`MAX_MEMBERS` members, a total beyond ``max_total_bytes`` and members expanding more than
    ``max_ratio`` times (zip bombs). Sizes are counted while writing, not taken from the headers.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"{archive.name!r} is not a valid zip file ({exc}); re-create the zip") from exc
    with zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise UnsafeArchiveError(f"{archive.name!r} holds {len(members)} files, more than {MAX_MEMBERS}")
        declared = sum(m.file_size for m in members)
        if declared > max_total_bytes:
            raise UnsafeArchiveError(
                f"{archive.name!r} expands to {declared:,} bytes, more than the limit of {max_total_bytes:,}"
            )
        root = dest.resolve()
        out: list[Path] = []
        total = 0
        for member in members:
            target = _member_target(member, root, archive.name)
            if target is None:
                continue
            limit = max(_RATIO_FLOOR_BYTES, int(member.compress_size * max_ratio))
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(member) as src, target.open("wb") as dst:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if written > limit or total > max_total_bytes:
                            raise UnsafeArchiveError(
                                f"{archive.name!r} member {member.filename!r} expands far beyond its compressed size "
                                f"(over {max_ratio:g}x or {max_total_bytes:,} bytes in all); it looks like a zip bomb"
                            )
                        dst.write(chunk)
            except UnsafeArchiveError:
                shutil.rmtree(root, ignore_errors=True)
                raise
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
                # a lying header (CRC or size), a truncated member, an unknown method or a password
                shutil.rmtree(root, ignore_errors=True)
                raise ImportFormatError(
                    f"{archive.name!r} member {member.filename!r} is damaged or encrypted ({exc}); re-create the zip"
                ) from exc
            out.append(target)
    return out


def check_zip(archive: Path, name: str, *, max_total_bytes: int, max_ratio: float) -> None:
    """Refuse (:class:`UnsafeArchiveError`) a zip-based file read by a library in memory (XLSX): more than
    :data:`MAX_MEMBERS` members, a declared total beyond ``max_total_bytes``, or a member declaring more than
    ``max_ratio`` times its compressed size. Headers that understate a member are caught by :mod:`zipfile`
    itself, which reads no more than the declared size and then checks the CRC."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise ImportFormatError(f"{name!r} is not a valid zip-based file ({exc}); save it again") from exc
    if len(members) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"{name!r} holds {len(members)} parts, more than {MAX_MEMBERS}")
    declared = sum(m.file_size for m in members)
    if declared > max_total_bytes:
        raise UnsafeArchiveError(f"{name!r} expands to {declared:,} bytes, more than the limit of {max_total_bytes:,}")
    for member in members:
        if member.file_size > max(_RATIO_FLOOR_BYTES, member.compress_size * max_ratio):
            raise UnsafeArchiveError(
                f"{name!r} part {member.filename!r} expands {member.file_size / max(member.compress_size, 1):,.0f}x "
                f"(limit {max_ratio:g}x); it looks like a zip bomb"
            )


def _member_target(member: zipfile.ZipInfo, root: Path, name: str) -> Path | None:
    raw = member.filename.replace("\\", "/")
    path = PurePosixPath(raw)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(
            f"{name!r} contains the path {member.filename!r}, which points outside the archive; "
            "re-create the zip with relative paths"
        )
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchiveError(f"{name!r} contains a link {member.filename!r}; links are not accepted")
    if member.is_dir():
        return None
    if path.parts and (path.parts[0] == "__MACOSX" or path.name.startswith("._")):
        return None  # macOS resource forks, not data
    target = (root / Path(*path.parts)).resolve()
    if not target.is_relative_to(root):
        raise UnsafeArchiveError(f"{name!r} member {member.filename!r} resolves outside the archive")
    return target

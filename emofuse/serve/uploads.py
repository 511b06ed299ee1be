"""Uploads read in memory: a raw request body, or the ``file`` field of a multipart form.

The body is read chunk by chunk as it arrives and the reading stops as soon as it passes the
size limit, so a large upload never sits whole in memory; nothing is written to disk (unlike
starlette's ``request.form()``, which spools file fields to temporary files).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["UploadError", "read_upload", "FILE_FIELD"]

FILE_FIELD = "file"


class UploadError(ValueError):
    """A request whose upload cannot be used; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


def _too_large(limit: int) -> UploadError:
    return UploadError(413, f"upload larger than the limit of {limit / 2**20:.3g} MB")


async def read_upload(
    headers: dict[str, str], chunks: AsyncIterator[bytes], max_bytes: int
) -> bytes:
    """The uploaded file's bytes: the ``file`` field of a ``multipart/form-data`` body, or the
    whole body for any other content type. ``headers``: the request headers (lower-case names).

    Raises:
        UploadError: 413 for a body over ``max_bytes`` (by Content-Length up front, or counted
            while reading), 400 for a malformed Content-Length or multipart body, 422 for a
            form without a ``file`` field.
    """
    length = headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise UploadError(400, f"malformed Content-Length header {length[:40]!r}")
        if int(length) > max_bytes:
            raise _too_large(max_bytes)
    content_type = headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        return await _read_multipart(content_type, chunks, max_bytes)
    body, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        body.append(chunk)
    return b"".join(body)


async def _read_multipart(content_type: str, chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """The first ``file`` field of a multipart body, parsed as the chunks arrive; the other
    fields are skipped without being kept."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data without a boundary")
    header_field, header_value = bytearray(), bytearray()
    part: dict = {}  # the current part: its headers, whether it is the file, whether it ended
    found: list[bytes] = []
    state = {"taken": False, "in_file": False, "done": False}

    def on_part_begin() -> None:
        part.clear()
        part["headers"] = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        part["headers"][bytes(header_field).strip().lower()] = bytes(header_value).strip()
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        is_file = disposition.get(b"name") == FILE_FIELD.encode() and not state["taken"]
        state["in_file"] = is_file
        if is_file:
            state["taken"] = True

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            found.append(bytes(data[start:end]))

    def on_part_end() -> None:
        if state["in_file"]:
            state["done"] = True
        state["in_file"] = False

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )  # fmt: skip
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as error:
        raise UploadError(400, f"malformed multipart/form-data body ({error})") from None
    if not state["taken"]:
        raise UploadError(422, f"the form has no {FILE_FIELD!r} field (the audio file)")
    if not state["done"]:
        raise UploadError(400, "incomplete multipart/form-data body (the file part never ended)")
    return b"".join(found)

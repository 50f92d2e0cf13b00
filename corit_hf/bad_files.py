"""Why a file cannot be used: one kind (its status in records.jsonl) and one wording per kind of bad file, so
`corit predict`, `corit prepare`, training on raw folders and the Space say the same about the same file."""

import os


PROBLEMS = {
    "not_found": "file not found",
    "unreadable": "cannot be read",
    "empty": "empty file",
    "not_media": "not a recognised image or video file",
    "no_video": "no video stream",
    "truncated": "truncated",
    "too_large": "too large",
    "decode_error": "cannot be decoded",
    "no_face": "no face found",
    "crashed": "its decoding killed the process preparing it, even alone (a crash in a decoder, or out of memory)",
}
"""Every kind of bad file, and how every command and the Space word it."""


def problem(status: str, detail: str = "") -> str:
    """The wording of a kind of bad file, with the specifics (the decoder's message, the size) in parentheses."""
    return f"{PROBLEMS[status]} ({detail})" if detail else PROBLEMS[status]


def over_limit(pixels: int, limit: int) -> str:
    """The detail of a `too_large` file: its pixel count and the limit, in megapixels."""
    return f"{pixels / 1e6:g} megapixels, above the limit of {limit / 1e6:g} megapixels"


class UnusableFile(ValueError):
    """A file that cannot be used: `status` is its kind (a key of `PROBLEMS`), `reason` says why in that kind's
    wording, and the message is `path: reason`."""

    def __init__(self, path: str | os.PathLike, status: str, detail: str = ""):
        self.path, self.status, self.detail = os.fspath(path), status, detail
        self.reason = problem(status, detail)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # picklable across worker processes despite the three-argument constructor
        return type(self), (self.path, self.status, self.detail)

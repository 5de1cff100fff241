"""The one shape of every error the service answers: a status, a stable code and a sentence."""

from __future__ import annotations


class ApiError(Exception):
    """A request the service refuses: answered as `status` with `{"error": {"code": code, "message": message}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of an error that is not an ApiError (a framework's 404, 405, validation error)."""
    return {"error": {"code": code, "message": message}}

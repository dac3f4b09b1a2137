"""Every request passes here first: the API key, the body size limit, and errors as JSON."""

import hmac
import json

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

PUBLIC_PATHS = ("/", "/favicon.ico", "/livez", "/readyz")  # the page and the probes; what the page calls needs the key
PUBLIC_PREFIXES = ("/static/",)


def error_body(status: int, message: str) -> dict:
    """OpenAI's error shape, which its clients read the message from."""
    return {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                      "code": status}}


class Guard:
    """Pure ASGI middleware, so streamed answers pass through untouched."""

    def __init__(self, app, api_key: str = "", max_body_bytes: int = 64 * 1024):
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or scope["method"] == "OPTIONS"
        if self.api_key and not public and not self._authorized(headers.get("authorization", "")):
            return await _reply(send, 401, "a valid API key is required: send 'Authorization: Bearer <key>'",
                                {"www-authenticate": "Bearer"})
        if scope["method"] in ("POST", "PUT", "PATCH"):
            declared = headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                return await _reply(send, 413, f"the body has {declared} bytes; the limit is {self.max_body_bytes}")
            body = await self._bounded_body(receive)
            if body is None:
                return await _reply(send, 413, f"the body is over the limit of {self.max_body_bytes} bytes")
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as error:
                return await _reply(send, 400, f"the body is not valid UTF-8 (byte {error.start})")
            receive = _replay(body, receive)
        return await self.app(scope, receive, send)

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    async def _bounded_body(self, receive) -> bytes | None:
        """The whole body (chunked bodies declare no length), or None past the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay


async def _reply(send, status: int, message: str, headers: dict | None = None) -> None:
    body = json.dumps(error_body(status, message)).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def install_error_handlers(app) -> None:
    """HTTP errors in OpenAI's shape (Starlette's own too: 404, 405); a body that is not JSON is 400, a JSON
    body of the wrong shape 422."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse(error_body(error.status_code, str(error.detail)), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return JSONResponse(error_body(400, "the body is not valid JSON"), status_code=400)
        message = "; ".join(f"{'.'.join(str(x) for x in p.get('loc', ()) if x != 'body') or 'body'}: {p.get('msg')}"
                            for p in problems)
        return JSONResponse(error_body(422, message), status_code=422)

"""A Python guest (componentize-py) of the `service-with-files` world: what a
function in Python can use under Mayfly, one route each (on the last
segment of the path, so that an app may mount it under any prefix).

- `GET /` -> `hello from python`
- `POST /echo` -> the request body
- `GET /env?name=N` -> the variable's value (404 if it is not granted)
- `GET /state` -> `calls=N`: a module-level counter, which a fresh instance
  per request keeps at 1
- `GET /count` -> `visits: N`, an increment in the `default` store
- `GET /config?key=K` -> the configuration value (404 if there is none)
- `GET /file?path=P` -> the file's contents (403 with the error if refused)
- `GET /fetch?url=U` -> `STATUS BODY` of a GET to U (403 with the error
  code if the host refused it)
- `GET /loop` -> spins forever; `GET /grow` -> allocates until memory runs
  out; `GET /huge?mb=N` -> a body of N MiB (default 64)
"""

import os
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, outgoing_handler, wasi_config_store, wasi_keyvalue_store
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Post,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
    Scheme_Https,
)

# At most what one `blocking-write-and-flush` takes.
CHUNK = 4096

calls = 0


def read_all(stream_owner) -> bytes:
    data = bytearray()
    with stream_owner.stream() as stream:
        while True:
            try:
                data += stream.blocking_read(65536)
            except Err as err:
                if isinstance(err.value, StreamError_Closed):
                    break
                raise
    return bytes(data)


def respond(out: ResponseOutparam, status: int, payload: bytes) -> None:
    headers = Fields.from_list(
        [("content-type", b"text/plain"), ("content-length", str(len(payload)).encode())]
    )
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    with body.write() as stream:
        for start in range(0, len(payload), CHUNK):
            stream.blocking_write_and_flush(payload[start : start + CHUNK])
    OutgoingBody.finish(body, None)


def stream_huge(out: ResponseOutparam, mebibytes: int) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    chunk = b"x" * CHUNK
    with body.write() as stream:
        for _ in range(mebibytes * (1 << 20) // CHUNK):
            stream.blocking_write_and_flush(chunk)
    OutgoingBody.finish(body, None)


def fetch(url: str) -> tuple[int, bytes]:
    """`STATUS BODY` of a GET to `url`, or 403 with the error code."""
    parts = urlsplit(url)
    request = OutgoingRequest(Fields())
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + ("?" + parts.query if parts.query else ""))
    try:
        future = outgoing_handler.handle(request, None)
    except Err as err:
        return 403, f"denied: {err.value!r}".encode()
    answer = future.get()
    while answer is None:
        with future.subscribe() as pollable:
            pollable.block()
        answer = future.get()
    # option<result<result<incoming-response, error-code>>>
    if isinstance(answer, Err) or isinstance(answer.value, Err):
        code = answer.value if isinstance(answer, Err) else answer.value.value
        return 403, f"denied: {code!r}".encode()
    response = answer.value.value
    status = response.status()
    body = response.consume()
    contents = read_all(body)
    return 200, f"{status} ".encode() + contents


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        global calls
        calls += 1
        full_path, _, query = (request.path_with_query() or "/").partition("?")
        # Routed on the last segment, so that the app may mount it anywhere.
        path = "/" + full_path.rsplit("/", 1)[-1]
        param = {key: values[0] for key, values in parse_qs(query).items()}
        try:
            if path == "/":
                respond(response_out, 200, b"hello from python\n")
            elif path == "/echo" and isinstance(request.method(), Method_Post):
                body = request.consume()
                payload = read_all(body)
                IncomingBody.finish(body)
                respond(response_out, 200, payload)
            elif path == "/env":
                value = os.environ.get(param.get("name", ""))
                if value is None:
                    respond(response_out, 404, b"not granted\n")
                else:
                    respond(response_out, 200, value.encode())
            elif path == "/state":
                respond(response_out, 200, f"calls={calls}\n".encode())
            elif path == "/count":
                with wasi_keyvalue_store.open("default") as bucket:
                    visits = atomics.increment(bucket, "visits", 1)
                respond(response_out, 200, f"visits: {visits}\n".encode())
            elif path == "/config":
                value = wasi_config_store.get(param.get("key", ""))
                if value is None:
                    respond(response_out, 404, b"no such key\n")
                else:
                    respond(response_out, 200, value.encode())
            elif path == "/file":
                try:
                    with open(param.get("path", ""), "rb") as file:
                        respond(response_out, 200, file.read())
                except OSError as err:
                    respond(response_out, 403, f"denied: {err}\n".encode())
            elif path == "/fetch":
                status, payload = fetch(param.get("url", ""))
                respond(response_out, status, payload)
            elif path == "/loop":
                while True:
                    pass
            elif path == "/grow":
                hoard = []
                while True:
                    hoard.append(bytearray(1 << 20))
            elif path == "/huge":
                stream_huge(response_out, int(param.get("mb", "64")))
            else:
                respond(response_out, 404, b"not found\n")
        except Err as err:
            respond(response_out, 500, f"error: {err.value!r}\n".encode())

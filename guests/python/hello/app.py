"""A Python `wasi:http` hello (componentize-py), world `http-with-env`.

GET anything -> 200 `Hello from Python!`; the same component the
benchmarks serve under Mayfly and under `wasmtime serve`.
"""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

HELLO = b"Hello from Python!\n"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        headers = Fields.from_list(
            [("content-type", b"text/plain"), ("content-length", str(len(HELLO)).encode())]
        )
        response = OutgoingResponse(headers)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(HELLO)
        OutgoingBody.finish(body, None)

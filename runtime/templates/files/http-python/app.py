"""{{name}}: a Mayfly function in Python, built by componentize-py for the
`service-with-files` world in `wit/` (`wasi:http/proxy`, the environment,
granted directories, and Mayfly's state interfaces: `wasi:keyvalue`,
`wasi:config`, `wasi:logging`).

Every request runs in a fresh instance, thrown away when the response is
done: nothing survives from one request to the next. It answers every path
with a greeting, from the `GREETING` variable that `app.toml` grants (a
component sees no variable it is not granted).
"""

import os

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        greeting = os.environ.get("GREETING", "Hello")
        path = request.path_with_query() or "/"
        body = f"{greeting} from Python! You asked for {path}\n".encode()

        response = OutgoingResponse(
            Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
        )
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with outgoing.write() as stream:
            # One call writes at most 4096 bytes.
            for start in range(0, len(body), 4096):
                stream.blocking_write_and_flush(body[start : start + 4096])
        OutgoingBody.finish(outgoing, None)

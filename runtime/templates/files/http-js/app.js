// {{name}}: a Mayfly function in JavaScript, built by ComponentizeJS for
// the `service-with-files` world in `wit/` (`wasi:http/proxy`, the
// environment, granted directories, and Mayfly's state interfaces:
// `wasi:keyvalue`, `wasi:config`, `wasi:logging`).
//
// Every request runs in a fresh instance, thrown away when the response is
// done: nothing survives from one request to the next. It answers every
// path with a greeting, from the `GREETING` variable that `app.toml` grants
// (a component sees no variable it is not granted).
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';
import { getEnvironment } from 'wasi:cli/environment@0.2.12';

export const incomingHandler = {
  handle(request, responseOut) {
    const env = new Map(getEnvironment());
    const greeting = env.get('GREETING') ?? 'Hello';
    const path = request.pathWithQuery() ?? '/';
    const encoder = new TextEncoder();
    const body = encoder.encode(`${greeting} from JavaScript! You asked for ${path}\n`);

    const response = new OutgoingResponse(Fields.fromList([
      ['content-type', encoder.encode('text/plain; charset=utf-8')],
    ]));
    const outgoing = response.body();
    ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
    const stream = outgoing.write();
    // One call writes at most 4096 bytes.
    for (let start = 0; start < body.length; start += 4096) {
      stream.blockingWriteAndFlush(body.subarray(start, start + 4096));
    }
    stream[Symbol.dispose]();
    OutgoingBody.finish(outgoing, undefined);
  },
};

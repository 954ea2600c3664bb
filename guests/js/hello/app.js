// A JavaScript `wasi:http` hello (ComponentizeJS), world `http-with-env`.
//
// GET anything -> 200 `Hello from JavaScript!`; the same component the
// benchmarks serve under Mayfly and under `wasmtime serve`.
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';

const HELLO = new TextEncoder().encode('Hello from JavaScript!\n');

export const incomingHandler = {
  handle(_request, responseOut) {
    const encoder = new TextEncoder();
    const response = new OutgoingResponse(Fields.fromList([
      ['content-type', encoder.encode('text/plain')],
      ['content-length', encoder.encode(String(HELLO.length))],
    ]));
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(HELLO);
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};

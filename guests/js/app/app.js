// A JavaScript guest (ComponentizeJS) of the `service-with-files` world:
// what a function in JavaScript can use under Mayfly, one route each (on
// the last segment of the path, so that an app may mount it under any
// prefix).
//
// - `GET /` -> `hello from javascript`
// - `POST /echo` -> the request body
// - `GET /env?name=N` -> the variable's value (404 if it is not granted)
// - `GET /state` -> `calls=N`: a module-level counter, which a fresh
//   instance per request keeps at 1
// - `GET /count` -> `visits: N`, an increment in the `default` store
// - `GET /config?key=K` -> the configuration value (404 if there is none)
// - `GET /file?path=P` -> the file's contents (403 with the error if
//   refused)
// - `GET /fetch?url=U` -> `STATUS BODY` of a GET to U (403 with the error
//   code if the host refused it)
// - `GET /loop` -> spins forever; `GET /grow` -> allocates until memory
//   runs out; `GET /huge?mb=N` -> a body of N MiB (default 64)
import {
  Fields, IncomingBody, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
} from 'wasi:http/types@0.2.12';
import { handle as send } from 'wasi:http/outgoing-handler@0.2.12';
import { getEnvironment } from 'wasi:cli/environment@0.2.12';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { open } from 'wasi:keyvalue/store@0.2.0-draft2';
import { increment } from 'wasi:keyvalue/atomics@0.2.0-draft2';
import { get as configGet } from 'wasi:config/store@0.2.0-rc.1';

// At most what one `blocking-write-and-flush` takes.
const CHUNK = 4096;
const encoder = new TextEncoder();

let calls = 0;

function bytes(text) {
  return typeof text === 'string' ? encoder.encode(text) : text;
}

function respond(responseOut, status, payload) {
  const data = bytes(payload);
  const response = new OutgoingResponse(Fields.fromList([
    ['content-type', encoder.encode('text/plain')],
    ['content-length', encoder.encode(String(data.length))],
  ]));
  response.setStatusCode(status);
  const body = response.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
  const stream = body.write();
  for (let at = 0; at < data.length; at += CHUNK) {
    stream.blockingWriteAndFlush(data.subarray(at, at + CHUNK));
  }
  stream[Symbol.dispose]();
  OutgoingBody.finish(body, undefined);
}

function streamHuge(responseOut, mebibytes) {
  const response = new OutgoingResponse(Fields.fromList([
    ['content-type', encoder.encode('text/plain')],
  ]));
  const body = response.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
  const stream = body.write();
  const chunk = new Uint8Array(CHUNK).fill(120);
  for (let written = 0; written < mebibytes * 1024 * 1024; written += CHUNK) {
    stream.blockingWriteAndFlush(chunk);
  }
  stream[Symbol.dispose]();
  OutgoingBody.finish(body, undefined);
}

// The whole of an input stream's owner (an incoming body).
function readAll(owner) {
  const stream = owner.stream();
  const parts = [];
  let length = 0;
  for (;;) {
    let part;
    try {
      part = stream.blockingRead(65536n);
    } catch (err) {
      if (err?.payload?.tag === 'closed') break;
      throw err;
    }
    parts.push(part);
    length += part.length;
  }
  stream[Symbol.dispose]();
  const all = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

// A granted file's contents, through `wasi:filesystem`.
function readFile(path) {
  for (const [dir, name] of getDirectories()) {
    const prefix = name.endsWith('/') ? name : `${name}/`;
    if (!path.startsWith(prefix)) continue;
    const file = dir.openAt({}, path.slice(prefix.length), {}, { read: true });
    const parts = [];
    let offset = 0n;
    for (;;) {
      const [part, end] = file.read(65536n, offset);
      parts.push(...part);
      offset += BigInt(part.length);
      if (end || part.length === 0) break;
    }
    return Uint8Array.from(parts);
  }
  throw new Error(`no granted directory holds ${path}`);
}

// `STATUS BODY` of a GET to `url`, or 403 with the error code.
function fetchUrl(url) {
  const target = new URL(url);
  const request = new OutgoingRequest(new Fields());
  request.setScheme({ tag: target.protocol === 'https:' ? 'HTTPS' : 'HTTP' });
  request.setAuthority(target.host);
  request.setPathWithQuery(`${target.pathname}${target.search}`);
  let future;
  try {
    future = send(request, undefined);
  } catch (err) {
    return [403, `denied: ${JSON.stringify(err.payload)}`];
  }
  let answer = future.get();
  while (answer === undefined) {
    future.subscribe().block();
    answer = future.get();
  }
  if (answer.tag === 'err' || answer.val.tag === 'err') {
    return [403, `denied: ${JSON.stringify(answer.val?.val ?? answer.val)}`];
  }
  const response = answer.val.val;
  const status = response.status();
  const contents = readAll(response.consume());
  const head = encoder.encode(`${status} `);
  const all = new Uint8Array(head.length + contents.length);
  all.set(head);
  all.set(contents, head.length);
  return [200, all];
}

export const incomingHandler = {
  handle(request, responseOut) {
    calls += 1;
    const url = new URL(request.pathWithQuery() ?? '/', 'http://guest');
    const param = (name) => url.searchParams.get(name) ?? '';
    try {
      // Routed on the last segment, so that the app may mount it anywhere.
      switch (`/${url.pathname.split('/').pop()}`) {
        case '/':
          return respond(responseOut, 200, 'hello from javascript\n');
        case '/echo': {
          const body = request.consume();
          const payload = readAll(body);
          IncomingBody.finish(body);
          return respond(responseOut, 200, payload);
        }
        case '/env': {
          const found = getEnvironment().find(([name]) => name === param('name'));
          return found ? respond(responseOut, 200, found[1]) : respond(responseOut, 404, 'not granted\n');
        }
        case '/state':
          return respond(responseOut, 200, `calls=${calls}\n`);
        case '/count': {
          const bucket = open('default');
          try {
            return respond(responseOut, 200, `visits: ${increment(bucket, 'visits', 1n)}\n`);
          } finally {
            bucket[Symbol.dispose]();
          }
        }
        case '/config': {
          const value = configGet(param('key'));
          return value === undefined ? respond(responseOut, 404, 'no such key\n') : respond(responseOut, 200, value);
        }
        case '/file': {
          try {
            return respond(responseOut, 200, readFile(param('path')));
          } catch (err) {
            return respond(responseOut, 403, `denied: ${err?.payload ?? err}\n`);
          }
        }
        case '/fetch': {
          const [status, payload] = fetchUrl(param('url'));
          return respond(responseOut, status, payload);
        }
        case '/loop':
          for (;;) { /* spins until the host stops it */ }
        case '/grow': {
          const hoard = [];
          for (;;) hoard.push(new Uint8Array(1024 * 1024).fill(1));
        }
        case '/huge':
          return streamHuge(responseOut, Number(param('mb') || '64'));
        default:
          return respond(responseOut, 404, 'not found\n');
      }
    } catch (err) {
      const detail = JSON.stringify(err?.payload ?? String(err), (_, v) => (typeof v === 'bigint' ? String(v) : v));
      return respond(responseOut, 500, `error: ${detail}\n`);
    }
  },
};

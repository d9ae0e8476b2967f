// The benchmark's floor: the Worker reads nothing but the path, forwards the request to
// the object named by it (as ours forwards a turn to the thread's object), and the
// object answers a constant. `GET /ok` is answered by the Worker itself (the harness's
// liveness check).
import { DurableObject } from 'cloudflare:workers';

const ANSWER = JSON.stringify({ ok: true });

export class Floor extends DurableObject {
  async fetch() {
    return new Response(ANSWER, { headers: { 'content-type': 'application/json' } });
  }
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === '/ok') return new Response('ok');
    // /threads/<id>/... → the object <id>, like a thread's object.
    const name = pathname.split('/')[2] || 'floor';
    return env.FLOOR.get(env.FLOOR.idFromName(name)).fetch(request);
  },
};

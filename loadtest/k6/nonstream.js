// k6: non-streaming chat completions through the gateway, with checks on the response.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=32 -e DURATION=30s -e FRAMES=20 loadtest/k6/nonstream.js
//
// Same setup as stream.js. The mock's fast mode answers FRAMES copies of "tok ".
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const MODEL = __ENV.MODEL || 'claude-3-haiku';
const FRAMES = parseInt(__ENV.FRAMES || '20', 10);

export const options = {
  scenarios: {
    nonstream: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '32', 10),
      duration: __ENV.DURATION || '30s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    http_req_duration: ['p(99)<50'],
  },
};

const body = JSON.stringify({
  model: MODEL,
  max_tokens: 256,
  messages: [{ role: 'user', content: `Hello fast:frames=${FRAMES}` }],
});
const params = { headers: { 'content-type': 'application/json' } };

export default function () {
  const res = http.post(`${BASE_URL}/v1/chat/completions`, body, params);
  let doc = null;
  try {
    doc = res.json();
  } catch (_) {
    doc = null;
  }
  check(res, {
    'status 200': (r) => r.status === 200,
    'content-type application/json': (r) => (r.headers['Content-Type'] || '').startsWith('application/json'),
    'a chat.completion': () => doc !== null && doc.object === 'chat.completion' && doc.id.startsWith('chatcmpl-'),
    'model is the alias': () => doc !== null && doc.model === MODEL,
    'the whole text': () => doc !== null && doc.choices[0].message.content === 'tok '.repeat(FRAMES),
    'finish_reason stop': () => doc !== null && doc.choices[0].finish_reason === 'stop',
    'usage filled in': () => doc !== null && doc.usage.completion_tokens === FRAMES && doc.usage.total_tokens === doc.usage.prompt_tokens + FRAMES,
  });
}

// k6: streaming chat completions through the gateway, with checks on the SSE content.
//
//   ai-gateway mock-bedrock --fast --listen 127.0.0.1:9000 &
//   AWS_ACCESS_KEY_ID=AKIDMOCKBEDROCK00001 AWS_SECRET_ACCESS_KEY=mock/secret/key/for/the/local/mock/only \
//     ai-gateway serve --config configs/loadtest.yaml &
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=32 -e DURATION=30s -e FRAMES=100 -e DELAY_US=1000 \
//     loadtest/k6/stream.js
//
// The mock's fast mode reads `fast:frames=N` and `fast:delay_us=D` from the prompt: every
// stream carries exactly FRAMES text deltas of "tok ". k6 reads a response whole, so this
// checks content and throughput; time to first chunk and gaps are loadtest/sse_probe's job.
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const MODEL = __ENV.MODEL || 'claude-3-haiku';
const FRAMES = parseInt(__ENV.FRAMES || '100', 10);
const DELAY_US = parseInt(__ENV.DELAY_US || '0', 10);

export const options = {
  scenarios: {
    stream: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '32', 10),
      duration: __ENV.DURATION || '30s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
  },
};

const badRecords = new Counter('sse_bad_records');
const records = new Trend('sse_records_per_stream');

const body = JSON.stringify({
  model: MODEL,
  stream: true,
  stream_options: { include_usage: true },
  max_tokens: 1024,
  messages: [{ role: 'user', content: `Hello fast:frames=${FRAMES} fast:delay_us=${DELAY_US}` }],
});
const params = { headers: { 'content-type': 'application/json' }, timeout: '120s' };

export default function () {
  const res = http.post(`${BASE_URL}/v1/chat/completions`, body, params);
  const text = res.body || '';
  const events = text.split('\n\n').filter((e) => e.length > 0);
  let ids = new Set();
  let content = '';
  let finish = null;
  let usage = null;
  let bad = 0;
  for (const e of events.slice(0, -1)) {
    if (!e.startsWith('data: ')) { bad++; continue; }
    try {
      const chunk = JSON.parse(e.slice(6));
      ids.add(chunk.id);
      if (chunk.object !== 'chat.completion.chunk' || chunk.model !== MODEL) bad++;
      if (chunk.choices.length > 0) {
        const c = chunk.choices[0];
        if (c.delta.content) content += c.delta.content;
        if (c.finish_reason) finish = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    } catch (_) {
      bad++;
    }
  }
  badRecords.add(bad);
  records.add(events.length);
  check(res, {
    'status 200': (r) => r.status === 200,
    'content-type text/event-stream': (r) => (r.headers['Content-Type'] || '').startsWith('text/event-stream'),
    'every record is data: + one JSON chunk': () => bad === 0,
    'one id for the whole stream': () => ids.size === 1,
    'all deltas, in order': () => content === 'tok '.repeat(FRAMES),
    'finish_reason stop': () => finish === 'stop',
    'usage chunk before [DONE]': () => usage !== null && usage.completion_tokens === FRAMES,
    'ends with data: [DONE]': () => text.endsWith('data: [DONE]\n\n'),
  });
}

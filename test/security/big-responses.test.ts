import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HTTP_STEP_RESPONSE_LIMIT } from '../../src/modules/messaging/flows/steps.ts';
import { PROVIDER_RESPONSE_LIMIT } from '../../src/modules/messaging/providers/types.ts';
import { infobipSms } from '../fakes/infobip.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { basicHeader, createChannel, createFlow, createPointsFlow, INFOBIP_BASIC } from '../messaging/setup.ts';
import { seedMember, simulate } from '../messaging/setup.ts';

// A service that answers a flow's http step or a provider send with a huge body must not make the
// server hold that body: the read stops at its limit and the request is aborted, the step takes its
// error path, the send is marked failed, and the server's memory stays where it was.

const HUGE_BYTES = 200 * 1024 * 1024;
const CHUNK = Buffer.from(`{"pad":"${'x'.repeat(64 * 1024 - 8)}`);
/** Growth of the resident set allowed while a huge answer streams in (reading it all: ~400 MB). */
const MAX_RSS_GROWTH = 48 * 1024 * 1024;

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** Streams HUGE_BYTES of never-ending JSON, generated as the client reads (back-pressure kept). */
function streamHuge(res: ServerResponse, sent: { bytes: number }): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  let closed = false;
  res.on('close', () => (closed = true));
  const pump = () => {
    while (!closed && sent.bytes < HUGE_BYTES) {
      sent.bytes += CHUNK.length;
      if (!res.write(CHUNK)) return void res.once('drain', pump);
    }
    if (!closed) res.end('"}');
  };
  pump();
}

/** Runs `fn` while sampling the resident set size; answers its result and the peak growth. */
async function peakRssGrowth<T>(fn: () => Promise<T>): Promise<{ result: T; growth: number }> {
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, growth: peak - baseline };
  } finally {
    clearInterval(timer);
  }
}

describe('big responses: outgoing calls read a bounded answer', () => {
  let t: TestServer;
  let huge: Server;
  let hugeUrl: string;
  const sent = { bytes: 0 };
  const phone = '+385914000001';
  let programId: string;

  before(async () => {
    huge = createServer((req, res) => {
      req.resume();
      req.on('end', () => streamHuge(res, sent));
    });
    await new Promise<void>((r) => huge.listen(0, '127.0.0.1', r));
    hugeUrl = `http://127.0.0.1:${(huge.address() as AddressInfo).port}`;
    t = await startTestServer({ manualClock: true });
    programId = (await seedMember(t, { phone, points: 10 })).program.id;
  });

  after(async () => {
    await t.server.services.messaging.outbound.drain();
    await t.close();
    huge.closeAllConnections();
    await new Promise<void>((r) => huge.close(() => r()));
  });

  it(`a provider send stops reading at ${PROVIDER_RESPONSE_LIMIT} bytes and fails without a retry`, async () => {
    const ch = await createChannel(t, {
      provider: 'infobip',
      sender: 'Tally',
      credentials: { base_url: hugeUrl, api_key: 'k'.repeat(32) },
      inbound_auth: INFOBIP_BASIC,
    });
    await createPointsFlow(t, programId, { channels: [ch.id] });
    sent.bytes = 0;
    const { result: status, growth } = await peakRssGrowth(async () => {
      const res = await fetch(`${t.url}/v1/channels/${ch.id}/inbound`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: basicHeader(INFOBIP_BASIC.username, INFOBIP_BASIC.password),
        },
        body: JSON.stringify(infobipSms(phone, '385921004026', 'points')),
      });
      await res.arrayBuffer();
      await t.server.services.messaging.outbound.drain();
      return res.status;
    });
    assert.equal(status, 200);
    const out = (await t.api('GET', `/v1/messages?channel_id=${ch.id}&direction=out`)).body.messages as any[];
    assert.equal(out.length, 1);
    assert.equal(out[0].status, 'failed');
    assert.equal(out[0].attempts, 1);
    assert.match(out[0].error, new RegExp(`larger than ${PROVIDER_RESPONSE_LIMIT} bytes`));
    assert.ok(growth < MAX_RSS_GROWTH, `resident set grew ${mb(growth)} MB`);
    assert.ok(sent.bytes < HUGE_BYTES / 4, `the answer was aborted early (${mb(sent.bytes)} MB sent)`);
  });

  it(`a flow http step stops reading at ${HTTP_STEP_RESPONSE_LIMIT} bytes and takes its error path`, async () => {
    const ch = await createChannel(t, { provider: 'simulator', sender: '+10000000081' });
    await createFlow(t, {
      name: 'huge',
      program_id: programId,
      channels: [ch.id],
      triggers: [{ keywords: ['HUGE'] }],
      steps: [
        { id: 'call', type: 'http', url: `${hugeUrl}/api`, timeout_ms: 15_000, next: 'ok', on_error: 'fail' },
        { id: 'ok', type: 'reply', template: 'read it all' },
        { id: 'fail', type: 'reply', template: 'failed: {{ api.error }}' },
      ],
    });
    sent.bytes = 0;
    const { result: replies, growth } = await peakRssGrowth(() => simulate(t, phone, 'huge', ch.id));
    assert.deepEqual(replies, [`failed: response body larger than ${HTTP_STEP_RESPONSE_LIMIT} bytes`]);
    assert.ok(growth < MAX_RSS_GROWTH, `resident set grew ${mb(growth)} MB`);
    assert.ok(sent.bytes < HUGE_BYTES / 4, `the answer was aborted early (${mb(sent.bytes)} MB sent)`);
  });
});

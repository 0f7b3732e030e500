import { randomBytes } from 'node:crypto';
import type { ManualClock } from '../../src/lib/clock.ts';
import { pointsFlow } from '../../src/modules/messaging/flows/examples.ts';
import type { FlowDefinition } from '../../src/modules/messaging/flows/definition.ts';
import type { TestServer } from '../helpers/server.ts';

// Shared set-up of the messaging tests: a program, a member with a phone and points, channels.

export const MEMBER_PHONE = '+385916242493';

export async function seedMember(
  t: TestServer,
  opts: {
    phone?: string;
    points?: number;
    name?: string;
    programBody?: Record<string, unknown>;
    metadata?: Record<string, unknown>;
  } = {},
) {
  const program = (
    await t.api('POST', '/v1/loyalties', {
      name: `Program ${randomBytes(4).toString('hex')}`,
      ...(opts.programBody ?? {}),
    })
  ).body;
  const member = await addMember(t, program.id, {
    phone: opts.phone ?? MEMBER_PHONE,
    points: opts.points ?? 2641,
    name: opts.name ?? 'Ana',
    metadata: opts.metadata,
  });
  return { program, member };
}

export async function addMember(
  t: TestServer,
  programId: string,
  c: { phone: string; points?: number; name?: string; metadata?: Record<string, unknown> },
) {
  const res = await t.api('POST', `/v1/loyalties/${programId}/members`, {
    customer: {
      source_id: `c-${randomBytes(5).toString('hex')}`,
      name: c.name ?? 'Member',
      phone: c.phone,
      metadata: c.metadata ?? {},
    },
  });
  if (res.status !== 200) throw new Error(`member: ${res.status} ${JSON.stringify(res.body)}`);
  if (c.points) {
    const add = await t.api('POST', `/v1/loyalties/members/${res.body.code}/balance`, { points: c.points });
    if (add.status !== 200) throw new Error(`points: ${add.status} ${JSON.stringify(add.body)}`);
  }
  return res.body;
}

export async function createFlow(t: TestServer, def: FlowDefinition) {
  const res = await t.api('POST', '/v1/flows', def);
  if (res.status !== 200) throw new Error(`flow: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function createPointsFlow(t: TestServer, programId: string, overrides: Partial<FlowDefinition> = {}) {
  return createFlow(t, pointsFlow(programId, overrides));
}

export async function createChannel(t: TestServer, body: Record<string, unknown>) {
  const res = await t.api('POST', '/v1/channels', { name: `ch-${randomBytes(3).toString('hex')}`, ...body });
  if (res.status !== 200) throw new Error(`channel: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function simulate(t: TestServer, from: string, text: string, channelId?: string) {
  const res = await t.api('POST', '/v1/simulator/messages', {
    from,
    text,
    ...(channelId ? { channel_id: channelId } : {}),
  });
  if (res.status !== 200) throw new Error(`simulate: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body.replies as { text: string }[]).map((r) => r.text);
}

export function clockOf(t: TestServer): ManualClock {
  return t.clock as ManualClock;
}

export const INFOBIP_BASIC = { type: 'basic', username: 'infobip', password: 'correct-horse-battery' };
export const basicHeader = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

/**
 * A flow's own world for report tests: a program, `phones.length` members with 1,000 points, a
 * simulator channel, a points flow on it and a reward of 100 points; `ask` sends a message a
 * second after the last, `redeem` redeems the reward for a member.
 */
export async function reportWorld(t: TestServer, tag: string, phones: string[], sender: string) {
  const program = (await t.api('POST', '/v1/loyalties', { name: `Program ${tag}` })).body;
  const cards: { code: string; customer_id: string; id: string }[] = [];
  for (const phone of phones) cards.push(await addMember(t, program.id, { phone, points: 1000 }));
  const ch = await createChannel(t, { provider: 'simulator', sender });
  const flow = await createPointsFlow(t, program.id, { channels: [ch.id] });
  const reward = (await t.api('POST', '/v1/rewards', { name: `Reward ${tag}`, parameters: { product: { id: 'mug' } } }))
    .body;
  await t.api('POST', `/v1/loyalties/${program.id}/rewards`, [
    { reward: reward.id, parameters: { loyalty: { points: 100 } } },
  ]);
  const redeem = async (i: number) => {
    const res = await t.api('POST', `/v1/loyalties/members/${cards[i].code}/redemption`, { reward: { id: reward.id } });
    if (res.status !== 200) throw new Error(`redeem: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as { id: string };
  };
  const ask = async (i: number, text = 'POINTS') => {
    clockOf(t).advance(1000);
    await simulate(t, phones[i], text, ch.id);
  };
  return { program, phones, cards, ch, flow, redeem, ask };
}

import type { Config } from './config.ts';
import { randomString } from './lib/ids.ts';
import type { FlowDefinition } from './modules/messaging/flows/definition.ts';
import { joinFlow, pointsFlow } from './modules/messaging/flows/examples.ts';
import { buildServer, type TallyServer } from './server.ts';
import type { Executor } from './storage/database.ts';

// `tally demo`: a demo program with members, a reward catalogue (a coupon campaign, a CAMPAIGN
// reward and a MATERIAL one), a simulator channel and four keyword flows made by cloning one
// (POINTS, TIER, REWARDS, REFERRAL), plus REDEEM and JOIN, and a referral program that gives each
// member a code (REFERRAL answers it). Running it again reuses what exists,
// and the one API key named "demo" gets a new token (a token is stored hashed, so printing it again
// means making a new one). It listens first (a port in use stops it before anything is written),
// sets up, serves (unless `serve: false`) and prints how to talk to it with curl.

export const DEMO_PROGRAM = 'Tally Coffee Club';
export const DEMO_KEY_NAME = 'demo';
export const DEMO_MEMBERS = [
  { source_id: 'demo-ana', name: 'Ana', phone: '+385916242493', points: 2641, metadata: { city: 'Zagreb' } },
  { source_id: 'demo-marko', name: 'Marko', phone: '+385912345678', points: 180, metadata: { city: 'Split' } },
  { source_id: 'demo-ivana', name: 'Ivana', phone: '+385987654321', points: 5200, metadata: { city: 'Zagreb' } },
];

const CLONES: { name: string; keywords: string[]; template: string }[] = [
  {
    name: 'Tier level',
    keywords: ['TIER', 'LEVEL'],
    template:
      '{% if tier %}Hi {{ customer.name }}, you are {{ tier.name }} in {{ program.name }}.' +
      '{% if tier.next %} {{ tier.next.points_needed }} more points to reach {{ tier.next.name }}.{% endif %}' +
      '{% else %}Hi {{ customer.name }}, ' +
      '{{ program.name }} has no tiers yet, so everyone is a valued member. You have {{ points }} points.{% endif %}',
  },
  {
    name: 'Rewards I can redeem',
    keywords: ['REWARDS', 'REWARD'],
    template:
      '{% if rewards %}{% if rewards.affordable.size > 0 %}' +
      'Hi {{ customer.name }}, with {{ points }} points you can redeem: ' +
      '{% for r in rewards.affordable %}{{ forloop.index }}. {{ r.name }} ({{ r.cost }} pts)' +
      '{% unless forloop.last %}, {% endunless %}{% endfor %}. Reply REDEEM and the number to get it.' +
      '{% else %}Hi {{ customer.name }}, the cheapest reward costs {{ rewards.cheapest_cost }} points; ' +
      'you have {{ points }}.{% endif %}' +
      '{% else %}Hi {{ customer.name }}, the rewards catalogue of {{ program.name }} is not set up yet. ' +
      'Your {{ points }} points are safe until it is.{% endif %}',
  },
  {
    name: 'Referral status',
    keywords: ['REFERRAL', 'REFER'],
    template:
      '{% if referral %}Hi {{ customer.name }}, your referral code is {{ referral.code }}; ' +
      '{{ referral.referred_customers }} friends joined so far.' +
      '{% if referral.next_tier %}{% if referral.next_tier.referees_needed == 1 %}' +
      ' Your next friend earns you {{ referral.next_tier.reward }}.' +
      '{% else %} {{ referral.next_tier.referees_needed }} more friends earn you {{ referral.next_tier.reward }}.' +
      '{% endif %}{% endif %}' +
      '{% else %}Hi {{ customer.name }}, referrals are not available in {{ program.name }} yet. ' +
      'Your card is {{ membership.code }}.{% endif %}',
  },
];

/** The demo's referral program: friends get 100 points, the referrer 200 per friend and a coffee at 3. */
export const DEMO_REFERRAL_CAMPAIGN = `${DEMO_PROGRAM} friends`;

/** The demo's reward catalogue: what REWARDS lists (cheapest first) and REDEEM gives. */
export const DEMO_COUPON_CAMPAIGN = `${DEMO_PROGRAM} 10% off`;
export const DEMO_REWARDS = [
  { name: 'A free coffee', points: 250, type: 'MATERIAL' as const },
  { name: '10% off your next order', points: 500, type: 'CAMPAIGN' as const },
];

/** The redeem step's answers (the POINTS flow's REDEEM follow-up and the REDEEM flow). */
const REDEEM_STEPS: FlowDefinition['steps'] = [
  {
    id: 'redeemed',
    type: 'reply',
    template:
      'Enjoy {{ redemption.reward.name }}, {{ customer.name }}! ' +
      '{% if redemption.code %}Your code: {{ redemption.code }}. ' +
      '{% else %}Show card {{ membership.code }} at the till to collect it. {% endif %}' +
      'You have {{ points }} points left.',
  },
  { id: 'not_redeemed', type: 'reply', template: '{{ redemption.message }}' },
];

/** The seed POINTS flow, whose REDEEM follow-up redeems (the first affordable reward unless a number follows). */
function demoPointsFlow(programId: string, channelId: string): FlowDefinition {
  const base = pointsFlow(programId, { channels: [channelId] });
  const steps = base.steps.filter((s) => s.id !== 'how_to_redeem');
  return {
    ...base,
    steps: [
      ...steps.map((s) => (s.type === 'wait' ? { ...s, replies: [{ keywords: ['REDEEM'], next: 'redeem' }] } : s)),
      {
        id: 'redeem',
        type: 'redeem',
        reward: '{{ message.rest | default: "1" }}',
        next: 'redeemed',
        refused: 'not_redeemed',
      },
      ...REDEEM_STEPS,
    ],
  };
}

/** REDEEM <n>: the n-th reward of the REWARDS reply (or a reward id), the voucher code back. */
function redeemFlow(programId: string, channelId: string): FlowDefinition {
  return {
    name: 'Redeem a reward',
    description: 'REDEEM 2: redeem the second reward of the REWARDS list and get its code',
    program_id: programId,
    channels: [channelId],
    triggers: [{ keywords: ['REDEEM'], match: 'first_word' }],
    steps: [
      { id: 'find', type: 'find_member', by: 'phone', next: 'redeem' },
      { id: 'redeem', type: 'redeem', next: 'redeemed', refused: 'not_redeemed' },
      ...REDEEM_STEPS,
    ],
  };
}

function cloneOverrides(c: (typeof CLONES)[number], channelId: string): Partial<FlowDefinition> {
  return {
    name: c.name,
    channels: [channelId],
    active: true,
    triggers: [{ keywords: c.keywords, match: 'first_word' }],
    opening_message: `Hi {{ customer.name | default: "there" }}! Reply ${c.keywords[0]} to check it.`,
    steps: [
      { id: 'find', type: 'find_member', by: 'phone', next: 'answer' },
      { id: 'answer', type: 'reply', template: c.template },
    ],
  };
}

/** The coupon campaign and the two rewards, assigned to the program (each made once, found by name). */
async function demoRewards(server: TallyServer, trx: Executor, programId: string): Promise<void> {
  const { services } = server;
  const campaign =
    (await services.vouchers.findCampaign(trx, DEMO_COUPON_CAMPAIGN)) ??
    (await services.vouchers.createCampaign(trx, {
      name: DEMO_COUPON_CAMPAIGN,
      description: 'Coupons the "10% off" reward gives (a new code for each redemption)',
      campaign_type: 'DISCOUNT_COUPONS',
      type: 'AUTO_UPDATE',
      voucher: {
        type: 'DISCOUNT_VOUCHER',
        discount: { type: 'PERCENT', percent_off: 10 },
        code_config: { prefix: 'COFFEE-', length: 6, charset: 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789' },
        redemption: { quantity: 1 },
      },
    }));
  const offered = new Set((await services.rewards.offered(trx, programId)).map((o) => o.reward.name));
  for (const r of DEMO_REWARDS) {
    if (offered.has(r.name)) continue;
    const reward = await services.rewards.create(trx, {
      name: r.name,
      ...(r.type === 'CAMPAIGN'
        ? { parameters: { campaign: { id: campaign.id } } }
        : { stock: 100, parameters: { product: { id: 'demo-coffee' } } }),
    });
    await services.rewards.createAssignments(trx, [
      { rewardId: reward.id, programId, parameters: { loyalty: { points: r.points } } },
    ]);
  }
}

/**
 * The referral campaign (made once, found by name), its two referrer tiers, and a referral code for
 * each demo member (join_once: a second run finds the same codes).
 */
async function demoReferrals(server: TallyServer, trx: Executor, programId: string, customerIds: string[]) {
  const { services } = server;
  let campaign = await services.vouchers.findCampaign(trx, DEMO_REFERRAL_CAMPAIGN);
  if (!campaign) {
    campaign = await services.vouchers.createCampaign(trx, {
      name: DEMO_REFERRAL_CAMPAIGN,
      description: 'Bring a friend: the friend gets 100 points, you get 200, and a free coffee at three friends',
      campaign_type: 'REFERRAL_PROGRAM',
      voucher: { code_config: { prefix: 'FRIEND-', length: 5, charset: 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789' } },
      referral_program: {
        conversion_event_type: 'redemption',
        referee_reward: { type: 'LOYALTY_CARD', amount: 100, related_object_parent: { id: programId } },
      },
    });
    await services.referrals.createTier(trx, campaign.id, {
      name: '200 points per friend',
      event: 'EACH_REFEREE',
      reward: { type: 'POINTS', points: 200, campaign_id: programId },
    });
    const coffee = (await services.rewards.offered(trx, programId)).find((o) => o.reward.name === 'A free coffee');
    if (coffee) {
      await services.referrals.createTier(trx, campaign.id, {
        name: 'A coffee at three friends',
        event: 'MIN_REFEREES',
        referees: 3,
        reward: { type: 'REWARD', id: coffee.reward.id },
      });
    }
  }
  for (const customerId of customerIds) {
    await services.vouchers.publish(trx, campaign, { customerId, joinOnce: true });
  }
}

export interface DemoResult {
  programId: string;
  channelId: string;
  flows: Record<string, string>;
  /** The program existed already (a second run). */
  reused: boolean;
  appId: string;
  token: string | null;
  /** created: a new "demo" key; rotated: the existing one got a new token; configured: TALLY_APP_ID/TALLY_APP_TOKEN. */
  key: 'created' | 'rotated' | 'configured';
}

export async function setupDemo(server: TallyServer, config: Config): Promise<DemoResult> {
  const { ctx, services, workflows } = server;
  const result = await ctx.transaction(async (trx) => {
    let program = await trx
      .selectFrom('programs')
      .selectAll()
      .where('name', '=', DEMO_PROGRAM)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    const reused = program !== undefined;
    program ??= await services.programs.create(trx, {
      name: DEMO_PROGRAM,
      description: 'Demo of keyword flows over SMS and WhatsApp',
      auto_join: true,
      voucher: { loyalty_card: { points: 50 } },
    });
    const definition = await services.programs.defaultDefinition(trx, program.id);
    // Tiers first, so members get theirs as their points arrive.
    if (!(await services.tiers.programTiers(trx, program.id)).hasTiers) {
      await services.tiers.createTiers(trx, program, [
        { name: 'Bronze', points: { from: 0, to: 999 } },
        { name: 'Silver', points: { from: 1000, to: 2999 } },
        { name: 'Gold', points: { from: 3000 } },
      ]);
    }
    await demoRewards(server, trx, program.id);
    const memberIds: string[] = [];
    for (const m of DEMO_MEMBERS) {
      const customer = (
        await services.customers.upsert(trx, {
          source_id: m.source_id,
          name: m.name,
          phone: m.phone,
          metadata: m.metadata,
        })
      ).row;
      memberIds.push(customer.id);
      const existing = (await services.members.ofCustomer(trx, customer.id, program.id))[0];
      if (existing) continue;
      const membership = await workflows.joinProgram(trx, program, customer, { source: 'demo' });
      const initial =
        (await services.ledger.balancesOf(trx, membership.id)).find((b) => b.balance_definition_id === definition.id)
          ?.balance ?? 0;
      if (m.points - initial !== 0) {
        await services.ledger.applyChange(trx, {
          program,
          membership,
          definition,
          points: m.points - initial,
          type: 'POINTS_ADDITION',
          reason: 'Demo balance',
          source: 'demo',
        });
      }
    }
    await demoReferrals(server, trx, program.id, memberIds);
    let channel = await trx
      .selectFrom('msg_channels')
      .selectAll()
      .where('provider', '=', 'simulator')
      .where('name', '=', 'Demo simulator')
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    channel ??= await services.messaging.channels.create(trx, {
      name: 'Demo simulator',
      provider: 'simulator',
      type: 'sms',
      sender: '+10005550100',
      settings: {
        catch_all_reply:
          "Sorry, I didn't get that. Reply POINTS, TIER, REWARDS, REDEEM or REFERRAL (or JOIN to become a member).",
      },
    });
    const flows: Record<string, string> = {};
    const existing = await trx
      .selectFrom('msg_flows')
      .select(['id', 'name'])
      .where('program_id', '=', program.id)
      .where('deleted_at', 'is', null)
      .execute();
    const byName = new Map(existing.map((f) => [f.name, f.id]));
    let pointsId = byName.get('Points balance');
    if (!pointsId)
      pointsId = (await services.messaging.flows.create(trx, demoPointsFlow(program.id, channel.id))).row.id;
    flows.POINTS = pointsId;
    const pointsRow = await services.messaging.flows.get(trx, pointsId);
    for (const c of CLONES) {
      let id = byName.get(c.name);
      if (!id) id = (await services.messaging.flows.clone(trx, pointsRow, cloneOverrides(c, channel.id))).row.id;
      flows[c.keywords[0]] = id;
    }
    let redeemId = byName.get('Redeem a reward');
    if (!redeemId) redeemId = (await services.messaging.flows.create(trx, redeemFlow(program.id, channel.id))).row.id;
    flows.REDEEM = redeemId;
    let joinId = byName.get('Join by message');
    if (!joinId)
      joinId = (await services.messaging.flows.create(trx, { ...joinFlow(program.id), channels: [channel.id] })).row.id;
    flows.JOIN = joinId;
    return { programId: program.id, channelId: channel.id, flows, reused };
  });
  if (config.appId && config.appToken) {
    await services.apiKeys.ensure(config.appId, config.appToken);
    return { ...result, appId: config.appId, token: config.appToken, key: 'configured' };
  }
  const existing = (await services.apiKeys.list()).filter((k) => k.name === DEMO_KEY_NAME && !k.revoked_at).at(-1);
  if (existing) {
    const token = `tly_sk_${randomString(40)}`;
    await services.apiKeys.ensure(existing.app_id, token);
    return { ...result, appId: existing.app_id, token, key: 'rotated' };
  }
  const created = await services.apiKeys.create(DEMO_KEY_NAME);
  return { ...result, appId: created.app_id, token: created.token, key: 'created' };
}

function keyLine(r: DemoResult): string {
  const ids = `X-App-Id ${r.appId}  X-App-Token ${r.token}`;
  if (r.key === 'configured') return `API key (TALLY_APP_ID/TALLY_APP_TOKEN): X-App-Id ${r.appId}`;
  if (r.key === 'created') return `API key "${DEMO_KEY_NAME}": ${ids}  (the token is shown only now)`;
  const note = '(shown only now; earlier demo tokens no longer work)';
  return `API key "${DEMO_KEY_NAME}" (existing, new token): ${ids}  ${note}`;
}

export function demoInstructions(url: string, r: DemoResult): string {
  const auth = `-H 'X-App-Id: ${r.appId}' -H 'X-App-Token: ${r.token ?? '<your token>'}'`;
  const h = `${auth} -H 'content-type: application/json'`;
  const say = (from: string, text: string) =>
    `  curl -s ${url}/v1/simulator/messages ${h} \\\n    -d '${JSON.stringify({ from, text })}'`;
  return [
    `${r.reused ? 'Demo already set up, reused' : 'Demo ready'}: program "${DEMO_PROGRAM}" (${r.programId}), ` +
      `simulator channel ${r.channelId}`,
    `Flows: ${Object.entries(r.flows)
      .map(([k, id]) => `${k} ${id}`)
      .join(', ')}`,
    `Members: ${DEMO_MEMBERS.map((m) => `${m.name} ${m.phone} (${m.points} points)`).join(', ')}`,
    keyLine(r),
    '',
    'Try it (Ana has 2,641 points):',
    say('+385916242493', 'POINTS'),
    say('+385916242493', 'tier'),
    say('+385916242493', 'Rewards'),
    say('+385916242493', 'REDEEM 2'),
    say('+385916242493', 'referral'),
    say('+385991112233', 'JOIN'),
    say('+385916242493', 'STOP'),
    '',
    `Flow report: curl -s '${url}/v1/flows/${r.flows.POINTS}/report' ${auth}`,
    `API docs: ${url}/docs`,
    '',
  ].join('\n');
}

export async function runDemo(
  config: Config,
  opts: { serve?: boolean; out?: (s: string) => void } = {},
): Promise<number> {
  const serve = opts.serve ?? config.workers;
  const out = opts.out ?? ((s: string) => process.stdout.write(s));
  const server = await buildServer({ ...config, workers: serve }, serve ? {} : { logger: false });
  let url = `http://${config.host}:${config.port}`;
  let result: DemoResult;
  try {
    // Listening before setting up: a port in use fails here, before a key is made whose token
    // would never be printed (the CLI turns the error into a message naming the port).
    if (serve) url = await server.listen();
    result = await setupDemo(server, config);
  } catch (err) {
    await server.close();
    throw err;
  }
  out(demoInstructions(url, result));
  if (!serve) {
    await server.close();
    return 0;
  }
  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  return new Promise<number>(() => undefined);
}

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { DEMO_MEMBERS, setupDemo } from '../../src/demo.ts';
import type { Locator } from 'playwright-core';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { backend, startTestServer, type TestServer } from '../helpers/server.ts';

// The console in a real browser: Debian's Chromium driven by playwright-core. Screenshots of each
// page go to test-output/ (not committed) for a person to look at.

const CHROMIUM = process.env.TALLY_CHROMIUM ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set TALLY_CHROMIUM)`;
if (skip) console.log(`# ${skip}`);
const text = async (l: Locator) => ((await l.textContent()) ?? '').trim();
const OUT = new URL('../../test-output/', import.meta.url).pathname;

describe('console in a browser', { skip }, () => {
  let t: TestServer;
  let browser: Browser;
  let page: Page;
  let receiver: Receiver;
  let demo: Awaited<ReturnType<typeof setupDemo>>;
  const pageErrors: string[] = [];
  const ana = DEMO_MEMBERS[0] as (typeof DEMO_MEMBERS)[number];

  const shot = async (name: string, p: Page = page) => {
    await p.screenshot({ path: `${OUT}${backend}-${name}.png`, fullPage: true });
  };

  before(async () => {
    mkdirSync(OUT, { recursive: true });
    t = await startTestServer();
    // The receiver fails the first request and accepts the next.
    let failed = false;
    receiver = await startReceiver(() => {
      if (failed) return { status: 200, body: 'ok' };
      failed = true;
      return { status: 500, body: 'boom' };
    });
    demo = await setupDemo(t.server, t.server.ctx.config);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(10_000);
    // Script errors and CSP violations are collected; the last test says there were none.
    page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // Refused sign-ins and forms with errors answer 401 and 422 on purpose.
      if (m.type() === 'error' && !/status of 4(01|22)/.test(m.text())) pageErrors.push(`${page.url()}: ${m.text()}`);
    });
  });

  after(async () => {
    await browser?.close();
    await t?.close();
    await receiver?.close();
  });

  test('nothing works without signing in; a wrong token is refused', async () => {
    await page.goto(`${t.url}/console/members`);
    assert.match(page.url(), /\/console\/sign-in$/);
    await shot('sign-in');
    await page.getByLabel('App ID').fill(demo.appId);
    await page.getByLabel('App token').fill('tly_sk_wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    assert.match(await text(page.getByRole('alert')), /do not match/);
  });

  test('sign in with App ID and App token', async () => {
    await page.getByLabel('App ID').fill(demo.appId);
    await page.getByLabel('App token').fill(demo.token as string);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const cookie = (await page.context().cookies()).find((c) => c.name === 'tally_console');
    assert.ok(cookie?.httpOnly);
    assert.equal(cookie?.sameSite, 'Strict');
    // The overview's charts are drawn (Chart.js sizes each canvas it draws on).
    for (const id of ['chart-members', 'chart-points', 'chart-messages', 'chart-webhooks']) {
      await page.locator(`#${id}[data-drawn]`).waitFor({ state: 'attached' });
    }
    await shot('overview');
  });

  test('a state-changing request without the CSRF token is refused', async () => {
    const res = await page.request.post(`${t.url}/console/sign-out`, { form: {} });
    assert.equal(res.status(), 403);
  });

  test('find the demo member by phone, adjust points once, see the balance and the ledger row', async () => {
    await page.getByRole('link', { name: 'Members' }).click();
    await page.getByLabel('Search members').fill(ana.phone);
    await page.getByRole('button', { name: 'Search' }).click();
    await shot('members-search');
    await page.locator('table a').first().click();
    await page.getByTestId('balance-points').waitFor();
    assert.equal(await text(page.getByTestId('balance-points')), String(ana.points));
    // The demo gives every member a referral code; the next tier is the demo's 200 points a friend.
    const referral = await text(page.getByTestId('referrals').locator('tbody tr').first());
    assert.match(referral, /friends/);
    assert.match(referral, /next friend: 200 points/);
    assert.match(await text(page.locator('main')), /No member contacts share this card/);
    await page.getByLabel('Points (negative to remove)').fill('125');
    await page.getByLabel('Reason').fill('Goodwill: late delivery');
    const form = page.locator('form[action$="/adjust"]');
    // The form's idempotency key: submitting the same form twice adds the points once.
    const fields = Object.fromEntries(
      await form
        .locator('input[type=hidden]')
        .evaluateAll((els) => els.map((e) => [e.getAttribute('name'), e.getAttribute('value')])),
    ) as Record<string, string>;
    await page.getByRole('button', { name: 'Adjust points' }).click();
    await page.getByRole('status').waitFor();
    assert.equal(await text(page.getByTestId('balance-points')), String(ana.points + 125));
    const again = await page.request.post(`${page.url().split('?')[0]}/adjust`, {
      form: { ...fields, points: '125', reason: 'Goodwill: late delivery' },
      maxRedirects: 0,
    });
    assert.equal(again.status(), 303);
    await page.reload();
    assert.equal(await text(page.getByTestId('balance-points')), String(ana.points + 125));
    const row = page.getByTestId('ledger').locator('tbody tr').first();
    assert.deepEqual((await row.locator('td').allTextContents()).slice(2, 5), [
      '125',
      '2766',
      'Goodwill: late delivery',
    ]);
    await shot('member');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('member-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test('POINTS in the simulator: the reply appears in the conversation', async () => {
    await page.getByRole('link', { name: 'Simulator' }).click();
    await page.getByLabel('From').fill(ana.phone);
    await page.getByLabel('Message').fill('POINTS');
    await page.getByRole('button', { name: 'Send' }).click();
    const reply = page.getByTestId('conversation').locator('li.out').last();
    await reply.waitFor();
    assert.match(await text(reply), new RegExp(`Hi Ana, you have ${ana.points + 125} points`));
    await shot('simulator');
  });

  test('resend a failed webhook delivery and see the new attempt', async () => {
    const hook = await t.api('POST', '/v1/webhooks', { target_url: `${receiver.url}/hook`, events: ['*'] });
    assert.equal(hook.status, 200, JSON.stringify(hook.body));
    const tested = await t.api('POST', `/v1/webhooks/${hook.body.id}/test`, {});
    assert.equal(tested.body.attempt.status, 'failed');
    await page.getByRole('link', { name: 'Webhooks' }).click();
    await shot('webhooks');
    await page.getByRole('link', { name: `${receiver.url}/hook` }).click();
    const rows = page.getByTestId('attempts').locator('tbody tr');
    assert.equal(await rows.count(), 1);
    assert.match(await text(rows.first()), /failed/);
    await rows.first().getByRole('button', { name: 'Resend' }).click();
    await page.getByRole('status').waitFor();
    assert.equal(await rows.count(), 2);
    assert.match(await text(rows.first()), /succeeded/);
    assert.match(await text(rows.first()), /manual/);
    await shot('webhook-deliveries');
    await page.getByRole('link', { name: 'Event log' }).click();
    await page.getByLabel('Event type').selectOption('customer.voucher.loyalty_card.points_added');
    await page.getByRole('button', { name: 'Filter' }).click();
    assert.match(await text(page.locator('tbody tr').first()), /customer\.voucher\.loyalty_card\.points_added/);
    await shot('events');
  });

  test('a flow saved with a mistake shows the error beside the step; a good save makes a diffed version', async () => {
    await page.getByRole('link', { name: 'Flows' }).click();
    await shot('flows');
    await page.getByRole('link', { name: 'Points balance' }).click();
    const find = page.getByTestId('step-find');
    const box = find.getByRole('textbox');
    await box.fill(((await box.inputValue()) as string).replace('"next": "check"', '"next": "nowhere"'));
    await page.getByRole('button', { name: 'Save as a new version' }).click();
    await find.getByRole('alert').waitFor();
    assert.match(await text(find.getByRole('alert')), /steps\[0\]\.next.*nowhere/);
    await shot('flow-error');
    await page.goto(page.url());
    const balance = page.getByTestId('step-balance').getByRole('textbox');
    await balance.fill((await balance.inputValue()).replace('Redeem them for a treat', 'Spend them on a treat'));
    await page.getByRole('button', { name: 'Save as a new version' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await text(page.getByRole('status')), /Saved as version 2/);
    await shot('flow');
    // The phone beside the editor answers with the flow as saved.
    await page.getByLabel('From').fill(ana.phone);
    await page.getByLabel('Message').fill('POINTS');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByTestId('conversation').locator('li.out').nth(1).waitFor();
    assert.match(await text(page.getByTestId('conversation').locator('li.out').last()), /Hi Ana, you have/);
    await page.getByRole('link', { name: 'diff' }).click();
    const diff = await text(page.getByTestId('diff'));
    assert.match(diff, /- .*Redeem them for a treat/);
    assert.match(diff, /\+ .*Spend them on a treat/);
    await shot('flow-diff');
  });

  test('an earning rule: the API error beside the field, then created, then disabled', async () => {
    await page.getByRole('link', { name: 'Programs' }).click();
    await page.getByRole('link', { name: 'Tally Coffee Club' }).click();
    await page.getByLabel('Points', { exact: true }).fill('-5');
    await page.getByRole('button', { name: 'Create rule' }).click();
    await page.locator('#rule-points-error').waitFor();
    assert.match(await text(page.locator('#rule-points-error')), /at least 1/);
    assert.equal(await page.getByLabel('Points', { exact: true }).getAttribute('aria-invalid'), 'true');
    await shot('program-error');
    await page.getByLabel('Points', { exact: true }).fill('10');
    await page.getByRole('button', { name: 'Create rule' }).click();
    await page.getByRole('status').waitFor();
    const row = page.getByTestId('rules').locator('tbody tr').first();
    assert.match(await text(row), /order\.paid\s*10 \(fixed\)\s*enabled/);
    await row.getByRole('button', { name: 'Disable' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await text(page.getByTestId('rules').locator('tbody tr').first()), /disabled/);
    await shot('program');
  });

  test('a reward: the API error beside the field, then created, assigned, edited and removed', async () => {
    await page.getByLabel('Reward name').fill('Tote bag');
    await page.getByLabel('Product id (products)').fill('tote');
    await page.getByLabel('Stock (empty: unlimited)').fill('20');
    await page.getByLabel('Points cost').fill('-300');
    await page.getByRole('button', { name: 'Create reward' }).click();
    await page.locator('#reward-points-error').waitFor();
    assert.match(await text(page.locator('#reward-points-error')), /at least 1/);
    assert.equal(await page.getByLabel('Points cost').getAttribute('aria-invalid'), 'true');
    // The refused assignment took its reward with it.
    const before = await t.api('GET', '/v1/rewards?limit=100');
    assert.ok(!before.body.data.some((r: { name: string }) => r.name === 'Tote bag'));
    await shot('program-reward-error');
    await page.getByLabel('Points cost').fill('300');
    await page.getByRole('button', { name: 'Create reward' }).click();
    await page.getByRole('status').waitFor();
    const rewards = page.getByTestId('rewards');
    const tote = await text(rewards.locator('tr', { hasText: 'Tote bag' }));
    assert.match(tote, /Tote bag\s*material\s*20 of 20 left\s*300/);
    // A coupon from a discount campaign, picked from the list; an empty name is refused beside it.
    await page.getByLabel('Kind').selectOption('CAMPAIGN');
    await page.getByLabel('Discount campaign (coupons)').selectOption({ index: 1 });
    await page.getByLabel('Points cost').fill('150');
    await page.getByRole('button', { name: 'Create reward' }).click();
    await page.locator('#reward-name-error').waitFor();
    assert.match(await text(page.locator('#reward-name-error')), /must not be empty/);
    await page.getByLabel('Reward name').fill('5 off a cake');
    await page.getByRole('button', { name: 'Create reward' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await text(rewards.locator('tr', { hasText: '5 off a cake' })), /coupon\s*unlimited\s*150/);
    // Edit: a negative stock is refused beside the field; then the name and stock are saved.
    await rewards.locator('tr', { hasText: 'Tote bag' }).getByRole('link', { name: 'Edit' }).click();
    await page.getByLabel('Stock (empty: unlimited)').fill('-1');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#reward-stock-error').waitFor();
    assert.match(await text(page.locator('#reward-stock-error')), /at least 0/);
    await page.getByLabel('Name').fill('Canvas tote bag');
    await page.getByLabel('Stock (empty: unlimited)').fill('15');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await text(rewards.locator('tr', { hasText: 'Canvas tote bag' })), /15 of 15 left/);
    await page.getByRole('button', { name: 'Remove 5 off a cake' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await text(page.getByRole('status')), /removed/);
    assert.equal(await rewards.locator('tr', { hasText: '5 off a cake' }).count(), 0);
    await shot('program-rewards');
  });

  test('tiers: an edit refused beside the field, then saved; a new tier refused, then created', async () => {
    const tiers = page.getByTestId('tiers');
    await page.getByRole('link', { name: 'Edit Gold' }).click();
    await page.getByLabel('Points to (empty: no upper end)').fill('2000');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#tier-to-error').waitFor();
    assert.match(await text(page.locator('#tier-to-error')), /must be >= points\.from/);
    assert.equal(await page.getByLabel('Points to (empty: no upper end)').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Points to (empty: no upper end)').fill('4999');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await text(tiers.locator('tr', { hasText: 'Gold' })), /Gold\s*3000\s*4999/);
    await page.getByLabel('Points from').fill('5000');
    await page.getByRole('button', { name: 'Create tier' }).click();
    await page.locator('#tier-name-error').waitFor();
    assert.match(await text(page.locator('#tier-name-error')), /must not be empty/);
    await shot('program-tier-error');
    await page.getByLabel('Tier name').fill('Platinum');
    await page.getByRole('button', { name: 'Create tier' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await text(tiers.locator('tbody tr').last()), /Platinum\s*5000\s*and up/);
  });

  test('a balance definition: expiry refused beside the field, a default renamed refused, then saved', async () => {
    await page.getByRole('link', { name: 'Edit points' }).click();
    await page.getByLabel('Name', { exact: true }).fill('stars');
    await page.getByLabel('Points expire').selectOption('MONTH');
    await page.getByLabel('Months', { exact: true }).fill('0');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#definition-months-error').waitFor();
    assert.match(await text(page.locator('#definition-months-error')), /at least 1/);
    await page.getByLabel('Months', { exact: true }).fill('12');
    await page.getByLabel('Rounded').selectOption('END_OF_MONTH');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#definition-name-error').waitFor();
    assert.match(await text(page.locator('#definition-name-error')), /cannot be renamed/);
    await shot('program-definition-error');
    await page.getByLabel('Name', { exact: true }).fill('points');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').waitFor();
    const row = await text(page.getByTestId('definitions').locator('tbody tr').first());
    assert.match(row, /12 months after earning, to the end of the month/);
    await shot('program-catalog');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('program-catalog-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test('messages and consents: the conversation and the opt-out history of a number', async () => {
    await t.api('POST', '/v1/simulator/messages', { from: ana.phone, text: 'STOP' });
    await page.getByRole('link', { name: 'Messages' }).click();
    await page.getByLabel('Phone number').fill(ana.phone);
    await page.getByRole('button', { name: 'Search' }).click();
    assert.match(await text(page.getByTestId('consent')), /opted out/);
    assert.match(await text(page.getByTestId('messages')), /POINTS/);
    await shot('messages');
  });

  test("a flow's report: interaction rate and redemptions as charts", async () => {
    await page.getByRole('link', { name: 'Reports' }).click();
    await page.getByRole('link', { name: 'Points balance' }).click();
    await page.locator('#chart-rate[data-drawn]').waitFor({ state: 'attached' });
    assert.equal(await text(page.getByTestId('interaction-rate')), '100%');
    await shot('report');
  });

  test('API keys: a new token is shown once; a revoked key no longer signs in', async () => {
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByLabel('Name').fill('ops laptop');
    await page.getByRole('button', { name: 'Create key' }).click();
    const token = await text(page.getByTestId('new-token'));
    assert.match(token, /^tly_sk_/);
    await shot('api-keys');
    await page.getByRole('button', { name: 'Revoke ops laptop' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await text(page.getByTestId('keys')), /ops laptop.*revoked/s);
    assert.doesNotMatch(await page.content(), new RegExp(token));
  });

  test('the overview after all that: charts of the last 30 days', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.locator('#chart-webhooks[data-drawn]').waitFor({ state: 'attached' });
    const label = await page.locator('#chart-webhooks').getAttribute('aria-label');
    assert.match(label ?? '', /Succeeded: 1, Failed: 1/);
    await shot('overview-after');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300); // Chart.js redraws on resize
    await shot('overview-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test('no page had a script error or a CSP violation', () => {
    assert.deepEqual(pageErrors, []);
  });
});

import type { FlowDefinition } from './definition.ts';

// The seed recipe as a flow: a member texts POINTS (or BALANCE, PTS) from their own number and
// gets their balance with a nudge to redeem; REDEEM within the session continues the conversation.
// (A card code in the text is looked up only with `by: "phone_or_card_code"` or `"card_code"`; see
// `card_code_reveals` for what it may show to another number.)
// `tally demo` and the tests start from this and clone it.

export const POINTS_REPLY =
  'Hi {{ customer.name | default: "there" }}, you have {{ points }} points on card {{ membership.code }}. ' +
  'Redeem them for a treat on your next visit: reply REDEEM to see how.';

export function pointsFlow(programId: string, overrides: Partial<FlowDefinition> = {}): FlowDefinition {
  return {
    name: 'Points balance',
    description: 'Reply with the balance and a nudge to redeem (seed recipe)',
    program_id: programId,
    triggers: [{ keywords: ['POINTS', 'BALANCE', 'PTS'], match: 'first_word' }],
    opening_message:
      'Hi {{ customer.name | default: "there" }}! Reply POINTS to check your {{ program.name }} balance.',
    unknown_sender_reply: "We couldn't find a {{ program.name }} card for this number. Reply JOIN to join.",
    session_timeout_seconds: 600,
    steps: [
      { id: 'find', type: 'find_member', by: 'phone', next: 'check' },
      {
        id: 'check',
        type: 'branch',
        cases: [{ when: { balance_gte_cheapest_reward: true }, next: 'can_redeem' }],
        else: 'balance',
      },
      {
        id: 'can_redeem',
        type: 'reply',
        template:
          'Hi {{ customer.name | default: "there" }}, you have {{ points }} points: ' +
          'enough for {{ rewards.affordable[0].name }}! Reply REDEEM to claim it.',
        next: 'wait_redeem',
      },
      { id: 'balance', type: 'reply', template: POINTS_REPLY, next: 'wait_redeem' },
      { id: 'wait_redeem', type: 'wait', replies: [{ keywords: ['REDEEM'], next: 'how_to_redeem' }] },
      {
        id: 'how_to_redeem',
        type: 'reply',
        template: 'To redeem, show card {{ membership.code }} at the till; your {{ points }} points are ready to use.',
      },
    ],
    ...overrides,
  };
}

export function joinFlow(programId: string): FlowDefinition {
  return {
    name: 'Join by message',
    program_id: programId,
    triggers: [{ keywords: ['JOIN'], match: 'only_word' }],
    steps: [
      { id: 'join', type: 'join', next: 'welcome', refused: 'closed' },
      {
        id: 'welcome',
        type: 'reply',
        template:
          'Welcome to {{ program.name }}! Your card is {{ membership.code }} ' +
          'and you have {{ points }} points. Reply POINTS any time.',
      },
      { id: 'closed', type: 'reply', template: '{{ program.name }} is not open for sign-up by message.' },
    ],
  };
}

// Keyword matching as shared/reference/keywords.md describes (RapidPro's rules):
// - text is normalised: Unicode NFKD, combining marks removed, lower-cased (so "PÖINTS", "points"
//   and full-width "ＰＯＩＮＴＳ" compare equal);
// - tokens are runs of letters, marks, digits, `_` and `'`; every other symbol (an emoji) is a token
//   of its own; punctuation and spaces separate tokens;
// - the keyword is the first token: `first_word` matches any message starting with it,
//   `only_word` a message that is that single token.

export type MatchMode = 'first_word' | 'only_word';

const TOKEN = /[\p{L}\p{M}\p{N}_']+|\p{Extended_Pictographic}|\p{S}/gu;

/** Case- and accent-insensitive form of a word or text. */
export function normalize(text: string): string {
  return text.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
}

/** Tokens of the raw text, in their original spelling (card codes keep their case). */
export function rawTokens(text: string): string[] {
  return text.normalize('NFKC').match(TOKEN) ?? [];
}

/** Normalised tokens. */
export function tokenize(text: string): string[] {
  return normalize(text).match(TOKEN) ?? [];
}

/** Validates and normalises a configured keyword: 1 to 16 characters, one token. */
export function normalizeKeyword(keyword: string): string | null {
  const tokens = tokenize(keyword.trim());
  if (tokens.length !== 1) return null;
  const k = tokens[0];
  if ([...k].length < 1 || [...k].length > 16) return null;
  return k;
}

export function matches(tokens: string[], keyword: string, mode: MatchMode): boolean {
  if (tokens.length === 0 || tokens[0] !== keyword) return false;
  return mode === 'first_word' || tokens.length === 1;
}

// Opt-out and opt-in words (carrier and WhatsApp conventions, Twilio's default list).
export const OPT_OUT_WORDS = new Set(['stop', 'stopall', 'unsubscribe', 'cancel', 'end', 'quit', 'optout', 'revoke']);
const OPT_OUT_PHRASES = new Set(['stop all', 'opt out', 'opt-out']);
export const OPT_IN_WORDS = new Set(['start', 'unstop', 'optin']);

/** 'opt_out' | 'opt_in' when the message is one of those words alone (punctuation aside). */
export function consentIntent(text: string): { action: 'opt_out' | 'opt_in'; word: string } | null {
  const tokens = tokenize(text);
  if (tokens.length === 1) {
    if (OPT_OUT_WORDS.has(tokens[0])) return { action: 'opt_out', word: tokens[0] };
    if (OPT_IN_WORDS.has(tokens[0])) return { action: 'opt_in', word: tokens[0] };
  }
  if (tokens.length === 2 && OPT_OUT_PHRASES.has(tokens.join(' ')))
    return { action: 'opt_out', word: tokens.join(' ') };
  if (tokens.length === 2 && tokens.join(' ') === 'opt in') return { action: 'opt_in', word: 'opt in' };
  return null;
}

export interface TriggerCandidate {
  flow_id: string;
  keyword: string;
  alias: string;
  match: string;
  channel_id: string;
  created_at: string;
}

/**
 * The most specific of the triggers that match: bound to the channel beats unbound, then
 * only_word beats first_word. All triggers of that specificity, oldest first: there is more than
 * one only when flows of different programs answer the same keyword on one number (the engine
 * then picks the program the sender is a member of).
 */
export function pickTriggers<T extends TriggerCandidate>(tokens: string[], candidates: T[], channelId: string): T[] {
  let best: T[] = [];
  let bestScore = -1;
  for (const c of candidates) {
    if (c.channel_id !== '' && c.channel_id !== channelId) continue;
    if (c.keyword === '*') continue;
    if (!matches(tokens, c.keyword, c.match as MatchMode)) continue;
    const score = (c.channel_id === channelId ? 2 : 0) + (c.match === 'only_word' ? 1 : 0);
    if (score > bestScore) {
      best = [c];
      bestScore = score;
    } else if (score === bestScore) best.push(c);
  }
  if (best.length > 1) best.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
  return best;
}

/** The most specific matching trigger (the oldest of a tie), or null. */
export function pickTrigger<T extends TriggerCandidate>(
  tokens: string[],
  candidates: T[],
  channelId: string,
): T | null {
  return pickTriggers(tokens, candidates, channelId)[0] ?? null;
}

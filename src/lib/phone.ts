import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

/**
 * Normalises a phone number to E.164 (+385916242493). Accepts "+385 91 624 2493",
 * "00385916242493", and provider forms without the plus ("385916242493", "whatsapp:+385...").
 * Returns null when the text is not a valid number.
 */
export function toE164(input: string): string | null {
  let e164 = parsed.get(input);
  if (e164 === undefined) {
    e164 = parse(input);
    if (parsed.size >= 20_000) parsed.clear();
    parsed.set(input, e164);
  }
  return e164;
}

// Parsing with libphonenumber's full metadata costs tens of microseconds; the same numbers come
// back over and over (members texting, lookups by phone).
const parsed = new Map<string, string | null>();

function parse(input: string): string | null {
  let s = input.trim().replace(/^(whatsapp|sms|tel):/i, '');
  if (s.startsWith('00')) s = `+${s.slice(2)}`;
  if (!s.startsWith('+')) s = `+${s}`;
  const parsed = parsePhoneNumberFromString(s);
  if (!parsed?.isPossible()) return null;
  return parsed.number;
}

// What the request log must never show: secrets a caller put in the query string (a channel's
// inbound `?token=`, or any credential sent there by mistake).

export const REDACTED = '[redacted]';

/** Parameter names (compared without case and punctuation) whose values are secrets. */
const SECRET_NAME = /token|secret|password|passwd|apikey|signature|authorization|credential/;
/** Values that are Tally API tokens whatever the parameter is called. */
const TALLY_TOKEN = /tly_sk_/i;

/**
 * A name or value as the server may read it: percent-decoded (repeatedly, so `%2574oken` is
 * `token` too), `+` as a space, compatibility forms folded (fullwidth letters).
 */
function decoded(text: string): string {
  let current = text;
  for (let i = 0; i < 3; i++) {
    // URLSearchParams decodes like the server's query parser and never throws on a bad escape.
    const next = new URLSearchParams(`x=${current.replace(/&/g, '%26').replace(/#/g, '%23')}`).get('x') ?? current;
    if (next === current) break;
    current = next;
  }
  return current.normalize('NFKC');
}

/** Whether a query parameter's name (as sent: any case, percent-encoded or not) names a secret. */
export function isSecretParameter(rawName: string): boolean {
  return SECRET_NAME.test(
    decoded(rawName)
      .toLowerCase()
      .replace(/[^a-z0-9]/g, ''),
  );
}

/**
 * The request URL with the value of every secret query parameter replaced by `[redacted]`.
 * Parameters are split on `&` and `;` (some parsers treat `;` as a separator), each name is
 * decoded before it is compared (`?%74oken=` is `?token=`), repeated names are each redacted,
 * and a value that is a Tally API token is redacted whatever its name. Everything else is kept
 * as it was sent.
 */
export function redactUrl(url: string): string {
  const start = url.indexOf('?');
  if (start < 0) return url;
  const parts = url.slice(start + 1).split(/([&;])/);
  for (let i = 0; i < parts.length; i += 2) {
    const part = parts[i]!;
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (TALLY_TOKEN.test(decoded(part))) parts[i] = REDACTED;
      continue;
    }
    const name = part.slice(0, eq);
    if (isSecretParameter(name) || TALLY_TOKEN.test(decoded(part.slice(eq + 1)))) parts[i] = `${name}=${REDACTED}`;
  }
  return `${url.slice(0, start + 1)}${parts.join('')}`;
}

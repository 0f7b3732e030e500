import { isSealed, type SecretBox } from '../../lib/secret-box.ts';
import type { SealedColumn } from '../../storage/sealed.ts';

// An endpoint's signing secrets are sealed (secret-box.ts): Tally needs them in clear to sign, so
// they are encrypted, not digested. The current and the previous secret share one context (the
// endpoint): a rotation moves the sealed current secret to `previous_secret` as it is.

export const endpointSecretContext = (endpointId: string) => `webhook_endpoints:${endpointId}:secret`;

function column(name: 'secret' | 'previous_secret'): SealedColumn {
  return {
    table: 'webhook_endpoints',
    column: name,
    reseal(value: string, id: string, box: SecretBox) {
      const next = isSealed(value)
        ? box.reseal(value, endpointSecretContext(id))
        : box.seal(value, endpointSecretContext(id));
      return next === value ? undefined : next;
    },
    sealedValues: (value: string, id: string) =>
      isSealed(value) ? [{ sealed: value, context: endpointSecretContext(id) }] : [],
  };
}

export const endpointSealedColumns: SealedColumn[] = [column('secret'), column('previous_secret')];

/** A stored signing secret in clear (a value stored in clear by an older version is taken as it is). */
export function openEndpointSecret(box: SecretBox, endpointId: string, stored: string): string {
  return isSealed(stored) ? box.open(stored, endpointSecretContext(endpointId)) : stored;
}

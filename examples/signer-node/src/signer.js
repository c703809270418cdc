// The signer: given a wallet and a message, fetch the wallet's delegated materials from
// hookvault (mutual TLS) and hand them to Dynamic's Node SDK (@dynamic-labs-wallet/node):
//   createDelegatedWalletClient({environmentId, apiKey, baseApiUrl?, baseMPCRelayApiUrl?})
//   delegatedSignMessage(client, {walletId, walletApiKey, keyShare, message, chainName})
// keyShare is the delegated share exactly as Dynamic sent it, parsed from its JSON text;
// walletApiKey is passed through untouched (the SDK sends it as x-dyn-wallet-api-key).
//
// Secrets stay in this function's locals for one call: they are fetched per request, never
// cached, never logged, and never put into an error message.
import { createDelegatedWalletClient, delegatedSignMessage } from '@dynamic-labs-wallet/node';
import { fetchMaterials as defaultFetchMaterials } from './materials.js';

export class SignerError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'SignerError';
    this.code = code; // bad_share | bad_materials | sdk_failed
  }
}

/** The share as the SDK's ServerKeyShare: the JSON object Dynamic encrypted, parsed once. */
export function keyShareFromDelegatedShare(delegatedShare) {
  let share;
  try {
    share = JSON.parse(delegatedShare);
  } catch {
    throw new SignerError('bad_share', 'the delegated share is not JSON');
  }
  if (share === null || typeof share !== 'object' || typeof share.secretShare !== 'string') {
    throw new SignerError('bad_share', 'the delegated share has no "secretShare" string');
  }
  return share;
}

const hex = (bytes) => `0x${Buffer.from(bytes).toString('hex')}`;

/** The SDK's signature (EcdsaSignature for ECDSA chains, bytes for others) as JSON-friendly hex. */
export function signatureToJson(sig) {
  if (sig instanceof Uint8Array) return { signature: hex(sig) };
  if (sig && sig.r instanceof Uint8Array && sig.s instanceof Uint8Array) {
    return { r: hex(sig.r), s: hex(sig.s), v: sig.v, der: sig.der ? hex(sig.der) : undefined };
  }
  throw new SignerError('sdk_failed', 'the SDK returned a signature of an unknown shape');
}

/**
 * @param {object} o
 * @param {object} o.hookvault  {url, ca, cert, key, source?} for fetchMaterials
 * @param {object} o.dynamic    {environmentId, apiKey, baseApiUrl?, baseMPCRelayApiUrl?}
 * @param {Function} [o.fetchMaterials] injectable for tests
 */
export function createSigner({ hookvault, dynamic, fetchMaterials = defaultFetchMaterials }) {
  if (!dynamic?.environmentId || !dynamic?.apiKey) {
    throw new TypeError('dynamic.environmentId and dynamic.apiKey are required');
  }
  const client = createDelegatedWalletClient({
    environmentId: dynamic.environmentId,
    apiKey: dynamic.apiKey,
    baseApiUrl: dynamic.baseApiUrl,
    baseMPCRelayApiUrl: dynamic.baseMPCRelayApiUrl,
  });

  /** Signs `message` with `walletId`'s delegated share. Resolves to the SDK's signature. */
  async function sign({ walletId, message }) {
    const materials = await fetchMaterials({ ...hookvault, walletId });
    if (materials.walletId !== walletId) {
      throw new SignerError('bad_materials', 'hookvault answered with materials of another wallet');
    }
    const keyShare = keyShareFromDelegatedShare(materials.delegatedShare);
    try {
      return await delegatedSignMessage(client, {
        walletId: materials.walletId,
        walletApiKey: materials.walletApiKey,
        keyShare,
        message,
        chainName: materials.chain,
      });
    } catch (err) {
      // The SDK's errors can be axios errors whose config carries the API keys in headers:
      // keep only the message and the HTTP status.
      const status = err?.response?.status;
      throw new SignerError('sdk_failed',
        `Dynamic SDK signing failed${status ? ` (HTTP ${status})` : ''}: ${err?.message ?? String(err)}`);
    }
  }

  return { sign };
}

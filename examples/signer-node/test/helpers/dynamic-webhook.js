// Builds Dynamic webhooks the way Dynamic sends them (shared/docs/protocols.md, "Dynamic"):
// fields encrypted with the hybrid RSA-OAEP(SHA-256) + AES-256-GCM envelope, body signed with
// HMAC-SHA256 in x-dynamic-signature-256. Test-only: it plays Dynamic's part.
import crypto from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url'); // no padding, as Dynamic sends

/** Encrypts a UTF-8 string to `publicKeyPem` as a {alg, iv, ct, tag, ek} envelope. */
export function encryptHybrid(publicKeyPem, plaintext) {
  const aesKey = crypto.randomBytes(32);
  const iv = crypto.randomBytes(16); // 16-byte GCM IV, as Dynamic's encryptor uses
  const cipher = crypto.createCipheriv('aes-256-gcm', aesKey, iv);
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  const ek = crypto.publicEncrypt(
    { key: publicKeyPem, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    aesKey,
  );
  return { alg: 'HYBRID-RSA-AES-256', iv: b64url(iv), ct: b64url(ct), tag: b64url(tag), ek: b64url(ek) };
}

/** A `wallet.delegation.created` event carrying `share` and `walletApiKey`, encrypted. */
export function delegationCreatedEvent({ publicKeyPem, walletId, userId, share, walletApiKey, shareSetId }) {
  const data = {
    chain: 'EVM',
    encryptedDelegatedShare: encryptHybrid(publicKeyPem, share),
    encryptedWalletApiKey: encryptHybrid(publicKeyPem, walletApiKey),
    publicKey: '0xd74ff800a3c6f66ecd217118aaa6fb1c916fa4e2',
    userId,
    walletId,
  };
  if (shareSetId) data.shareSetId = shareSetId;
  return {
    messageId: crypto.randomUUID(),
    eventId: crypto.randomUUID(),
    eventName: 'wallet.delegation.created',
    timestamp: new Date().toISOString(),
    webhookId: crypto.randomUUID(),
    userId,
    environmentId: crypto.randomUUID(),
    environmentName: 'sandbox',
    data,
  };
}

/** The body bytes and headers of a signed delivery of `event`. */
export function signedDelivery(event, webhookSecret) {
  const body = JSON.stringify(event);
  const mac = crypto.createHmac('sha256', Buffer.from(webhookSecret, 'utf8')).update(body).digest('hex');
  return {
    body,
    headers: { 'content-type': 'application/json', 'x-dynamic-signature-256': `sha256=${mac}` },
  };
}

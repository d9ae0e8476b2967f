// Base64 and digests that run alike in Node and in a Worker (no Buffer, no node:crypto).

const CHUNK = 0x8000;

/** Base64 of bytes. */
export function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

/** The bytes of base64 text. */
export function fromBase64(text) {
  const binary = atob(text ?? '');
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const encoder = new TextEncoder();

/**
 * The digest a message-list item is keyed by: the first 32 hex digits of
 * sha256(type, NUL, bytes), as the Python saver computes it.
 */
export async function digest(kind, data) {
  const head = encoder.encode(`${kind}\0`);
  const joined = new Uint8Array(head.length + data.length);
  joined.set(head);
  joined.set(data, head.length);
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', joined));
  let hex = '';
  for (const byte of hash.subarray(0, 16)) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

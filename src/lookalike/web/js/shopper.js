// The shopper id: an opaque random id in a cookie (no account), sent with every request, so the server can
// keep this browser's taste for the "For you" row.

const COOKIE = "lookalike_shopper";
const ONE_YEAR = 365 * 24 * 3600;

function randomId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function shopperId() {
  const found = document.cookie.split("; ").find((part) => part.startsWith(`${COOKIE}=`));
  if (found) return found.slice(COOKIE.length + 1);
  const id = randomId();
  document.cookie = `${COOKIE}=${id}; path=/; max-age=${ONE_YEAR}; SameSite=Lax`;
  return id;
}

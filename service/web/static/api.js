// The API under /api/v1 with the signed-in token; errors become ApiError with the problem+json detail.
const KEY = "soilwatch.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

let onUnauthorised = () => {};
export function whenUnauthorised(handler) { onUnauthorised = handler; }

export async function request(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token.get()}`, ...headers } };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`/api/v1${path}`, init);
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not JSON */ }
    if (response.status === 401) onUnauthorised(problem);
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

export const getJson = (path) => request(path);

/** A URL query string from an object, leaving out empty values; arrays repeat the key. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === "" || value === null || value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** An authorised image (tiles, chips, photos) as an object URL; null when there is none. */
export async function blobUrl(path) {
  const response = await fetch(path.startsWith("/api/") ? path : `/api/v1${path}`,
    { headers: { Authorization: `Bearer ${token.get()}` } });
  if (response.status !== 200) return null;
  return URL.createObjectURL(await response.blob());
}

/** Download ``path`` (with the token) and save it under the server's file name. */
export async function download(path) {
  const response = await request(path, { raw: true });
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename\*=UTF-8''([^;]+)/.exec(disposition) || /filename="([^"]+)"/.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : "export";
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return name;
}

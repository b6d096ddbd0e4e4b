// The connection to the hub: where it is, the admin token, and calls to its admin API. In the desktop app
// Tauri tells the address and the token; in a browser the page's own origin and ?token= do.

import { $, showNotice } from './dom.js';

export const tauri = window.__TAURI__;

export const conn = {
  base: null, // the hub's URL, e.g. http://127.0.0.1:6001
  token: null, // the admin token
  status: null, // the desktop's view of the hub: running / error, with the reason
};

/** Calls a desktop command; null when running in a browser. */
export async function invoke(command, args) {
  if (!tauri) return null;
  return tauri.core.invoke(command, args);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, options = {}) {
  const res = await fetch(conn.base + path, {
    ...options,
    headers: { Authorization: 'Bearer ' + conn.token, ...(options.body ? { 'Content-Type': 'application/json' } : {}) },
  });
  const body = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body.error || 'HTTP ' + res.status);
  return body;
}

/** Learns where the hub is: from the desktop, or from the page's own address and ?token=. */
export async function connect() {
  if (tauri) {
    const c = await invoke('connection');
    conn.status = c.status;
    conn.token = c.admin_token;
    conn.base = c.status.base_url;
    showNotice(c.notice);
  } else {
    conn.base = location.origin;
    conn.token = new URLSearchParams(location.search).get('token') || sessionStorage.getItem('poussr-token');
    if (conn.token) sessionStorage.setItem('poussr-token', conn.token);
    conn.status = { state: 'running' };
    $('tab-settings').hidden = true;
  }
}

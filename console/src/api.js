// The REST API, called with the session cookie; state changes carry the session's CSRF token.
import { reactive } from 'vue'

// The tenant the console works in, when the principal chose one other than its own: sent as
// X-Orchestrator-Tenant on every request, and kept for the browser tab (sessionStorage).
const TENANT = 'orchestrator.tenant'
export const session = reactive({ ready: false, me: null, csrf: null, error: null, tenant: sessionStorage.getItem(TENANT) || '' })

export function tenantHeaders() {
  return session.tenant ? { 'X-Orchestrator-Tenant': session.tenant } : {}
}

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json', ...tenantHeaders() }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  const data = text ? JSON.parse(text) : null
  if (!response.ok) {
    const error = (data && data.error) || {}
    throw new ApiError(response.status, error.code || 'http_' + response.status, error.message || response.statusText, error.details || [])
  }
  return data
}

// Quietly: 401 is an answer here (not signed in), not an error worth logging.
async function quiet(path) {
  const response = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json', ...tenantHeaders() } })
  return response.ok ? response.json() : null
}

// Whether a session may be open: remembered at sign-in (the cookie itself is HttpOnly), so a
// first visit shows the sign-in without asking the API (and logging a 401).
const FLAG = 'orchestrator.session'
const authOff = () => document.cookie.split('; ').includes('orchestrator_console=auth-off')

export async function loadSession() {
  if (authOff() || localStorage.getItem(FLAG)) {
    const current = authOff() ? null : await quiet('/api/v1/sessions/current')
    session.csrf = current ? current.csrf_token : null
    session.me = authOff() || current ? await quiet('/api/v1/me') : null
    if (!session.me && session.tenant && (authOff() || current)) {
      chooseTenant('') // no longer has roles there: back to its own tenant
      session.me = await quiet('/api/v1/me')
    }
    if (!session.me) localStorage.removeItem(FLAG)
  }
  session.ready = true
}

export async function signIn(key) {
  const response = await fetch('/api/v1/sessions', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Authorization: 'Bearer ' + key, Accept: 'application/json' },
  })
  const data = await response.json()
  if (!response.ok) throw new ApiError(response.status, data.error.code, data.error.message)
  session.csrf = data.csrf_token
  chooseTenant('')
  session.me = await quiet('/api/v1/me')
  localStorage.setItem(FLAG, '1')
}

export async function signOut() {
  try {
    await api('DELETE', '/api/v1/sessions/current')
  } finally {
    localStorage.removeItem(FLAG)
    session.me = null
    session.csrf = null
  }
}

function chooseTenant(tenant) {
  session.tenant = tenant
  if (tenant) sessionStorage.setItem(TENANT, tenant)
  else sessionStorage.removeItem(TENANT)
}

// Work in another tenant the principal has roles in ('' for its own): the permissions shown are
// that tenant's. Refused (the previous tenant kept) when the server says it has none there.
export async function switchTenant(tenant) {
  const previous = session.tenant
  chooseTenant(session.me && tenant === session.me.tenant && !previous ? '' : tenant)
  const me = await quiet('/api/v1/me')
  if (!me) {
    chooseTenant(previous)
    throw new ApiError(403, 'tenant_forbidden', `no roles in tenant ${tenant}`)
  }
  session.me = me
}

export function can(permission) {
  return Boolean(session.me && session.me.permissions.includes(permission))
}

export function lacks(permission) {
  return can(permission) ? '' : `You lack ${permission} in tenant ${session.me ? session.me.tenant : '?'}`
}

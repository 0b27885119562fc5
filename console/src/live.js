// Live updates: server-sent events from /api/v1/feed/stream (the event feed, filtered to the
// tenant, and to one execution when asked). `onEvent` is called for each committed event, and
// with null when the view should reload: when a stream starts afresh at the feed's head (what
// committed between the page's load and that start is then seen), and when the server reset a
// catch-up that fell too far behind. The stream is read with fetch rather than EventSource, so
// it carries the chosen tenant's header; like EventSource it reconnects by itself, resuming
// after the last id it received: nothing is missed, so that needs no reload.
import { tenantHeaders } from './api.js'

const RETRY_MS = 1000
const MAX_RETRY_MS = 30000

export function follow(query, onEvent) {
  const params = new URLSearchParams(query)
  const url = '/api/v1/feed/stream' + (params.toString() ? '?' + params : '')
  const controller = new AbortController()
  let last = null // the id of the last message: where a reconnection resumes

  const handlers = {
    ready: (data) => { if (!JSON.parse(data).catching_up) onEvent(null) },
    reset: () => onEvent(null),
    event: (data) => onEvent(JSON.parse(data)),
  }

  async function run() {
    let delay = RETRY_MS
    while (!controller.signal.aborted) {
      try {
        const headers = { Accept: 'text/event-stream', ...tenantHeaders() }
        if (last !== null) headers['Last-Event-ID'] = last
        const response = await fetch(url, { headers, credentials: 'same-origin', signal: controller.signal })
        if (response.ok && response.body) {
          delay = RETRY_MS
          await read(response.body)
        }
      } catch {
        // a dropped connection, or the view closed it: retried below unless closed
      }
      if (controller.signal.aborted) return
      await new Promise((resolve) => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, MAX_RETRY_MS)
    }
  }

  async function read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ''
    let type = ''
    let data = []
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      buffer += value
      let end
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, '')
        buffer = buffer.slice(end + 1)
        if (line === '') { // a blank line ends a message
          if (data.length && handlers[type || 'message']) handlers[type || 'message'](data.join('\n'))
          type = ''
          data = []
          continue
        }
        if (line.startsWith(':')) continue // a comment keeps the connection open
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') type = text
        else if (field === 'data') data.push(text)
        else if (field === 'id') last = text
      }
    }
  }

  run()
  return () => controller.abort()
}

// Live updates: server-sent events from /api/v1/feed/stream (the event feed, filtered to the
// tenant, and to one execution when asked). EventSource reconnects by itself.
export function follow(query, onEvent) {
  const params = new URLSearchParams(query)
  const source = new EventSource('/api/v1/feed/stream' + (params.toString() ? '?' + params : ''))
  source.addEventListener('event', (message) => onEvent(JSON.parse(message.data)))
  return () => source.close()
}

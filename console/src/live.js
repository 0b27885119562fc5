// Live updates: server-sent events from /api/v1/feed/stream (the event feed, filtered to the
// tenant, and to one execution when asked). `onEvent` is called for each committed event, and
// with null when the view should reload: when a stream starts afresh at the feed's head (what
// committed between the page's load and that start is then seen), and when the server reset a
// catch-up that fell too far behind. EventSource reconnects by itself, resuming after the last
// id it received: nothing is missed, so that needs no reload.
export function follow(query, onEvent) {
  const params = new URLSearchParams(query)
  const source = new EventSource('/api/v1/feed/stream' + (params.toString() ? '?' + params : ''))
  source.addEventListener('ready', (message) => {
    if (!JSON.parse(message.data).catching_up) onEvent(null)
  })
  source.addEventListener('reset', () => onEvent(null))
  source.addEventListener('event', (message) => onEvent(JSON.parse(message.data)))
  return () => source.close()
}

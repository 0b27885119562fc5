// A small router over the History API under /console: the path picks the page, the query holds
// the filters (so a filtered view can be bookmarked and shared).
import { reactive } from 'vue'

const BASE = '/console'
export const route = reactive({ path: '/', query: {} })

function read() {
  const url = new URL(window.location.href)
  let path = url.pathname.startsWith(BASE) ? url.pathname.slice(BASE.length) : url.pathname
  route.path = path || '/'
  route.query = Object.fromEntries(url.searchParams)
}

export function href(path, query = {}) {
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v != null))
  const search = params.toString()
  return BASE + path + (search ? '?' + search : '')
}

export function go(path, query = {}, replace = false) {
  const target = href(path, query)
  if (replace) window.history.replaceState(null, '', target)
  else window.history.pushState(null, '', target)
  read()
}

export function link(event, path, query) {
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return
  event.preventDefault()
  go(path, query)
}

window.addEventListener('popstate', read)
read()

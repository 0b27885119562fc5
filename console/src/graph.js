// A definition's steps as a graph (nodes and edges), laid out top to bottom by dagre, and each
// step's state in an execution state (the API's state answer).
import dagre from '@dagrejs/dagre'

const TERMINAL = new Set(['succeed', 'fail'])

function targets(step) {
  const out = []
  if (step.next) out.push([step.next, ''])
  for (const choice of step.choices || []) if (choice.next) out.push([choice.next, 'when'])
  if (step.default) out.push([step.default, 'default'])
  if (step.on_timeout) out.push([step.on_timeout, 'timeout'])
  for (const c of step.catch || []) if (c.next) out.push([c.next, 'catch'])
  return out
}

// Steps of one list: explicit targets, else the next step of the list, else `exit` (the join).
function walk(steps, exit, nodes, edges) {
  steps.forEach((step, index) => {
    nodes.push({ id: step.name, type: step.type })
    const explicit = targets(step)
    if (step.type === 'parallel') {
      const join = explicit.length ? explicit : [[steps[index + 1]?.name || exit, '']].filter(([t]) => t)
      for (const branch of step.branches || []) {
        const first = branch.steps && branch.steps[0]
        if (first) edges.push([step.name, first.name, branch.name || ''])
        const last = branch.steps && branch.steps[branch.steps.length - 1]
        walk(branch.steps || [], null, nodes, edges)
        if (last && !TERMINAL.has(last.type) && !targets(last).length) for (const [t] of join) edges.push([last.name, t, 'join'])
      }
      return
    }
    if (explicit.length) for (const [t, label] of explicit) edges.push([step.name, t, label])
    else if (!TERMINAL.has(step.type)) {
      const following = steps[index + 1]?.name || exit
      if (following) edges.push([step.name, following, ''])
    }
  })
}

export function layout(definition) {
  const nodes = []
  const edges = []
  walk(definition.steps || [], null, nodes, edges)
  const known = new Set(nodes.map((n) => n.id))
  const g = new dagre.graphlib.Graph()
  g.setGraph({ rankdir: 'TB', nodesep: 30, ranksep: 50 })
  g.setDefaultEdgeLabel(() => ({}))
  for (const n of nodes) g.setNode(n.id, { width: 170, height: 46 })
  const kept = edges.filter(([a, b]) => known.has(a) && known.has(b))
  for (const [a, b] of kept) g.setEdge(a, b)
  dagre.layout(g)
  return {
    nodes: nodes.map((n) => {
      const p = g.node(n.id)
      return { id: n.id, kind: n.type, position: { x: p.x - 85, y: p.y - 23 } }
    }),
    edges: kept.map(([a, b, label], i) => ({ id: `e${i}-${a}-${b}`, source: a, target: b, label })),
  }
}

// pending | running | retrying | waiting | succeeded | failed (finished: redacted outputs)
export function stepStates(state) {
  const states = {}
  if (!state) return states
  if (state.step_states) return state.step_states
  for (const [name, output] of Object.entries(state.steps || {})) {
    if (output && typeof output === 'object' && 'error' in output) states[name] = 'failed'
    else if (typeof output === 'string' && output.startsWith('[redacted')) states[name] = 'finished'
    else states[name] = 'succeeded'
  }
  for (const [name, active] of Object.entries(state.active || {})) {
    if (active.phase === 'retry_wait') states[name] = 'retrying'
    else if (active.kind === 'wait' || active.kind === 'wait_for_event') states[name] = 'waiting'
    else states[name] = 'running'
  }
  if (state.error && state.error.step && !states[state.error.step]) states[state.error.step] = 'failed'
  return states
}

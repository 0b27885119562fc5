// A form from a template's JSON-Schema parameters, and the values it sends back.
// A field is {name, kind: string|number|integer|boolean|enum, required, value, options, ...};
// an empty field is left out, so the template's default applies and a missing required one is
// reported by the server with its path.

export function fieldsOf(schema) {
  const required = new Set(schema.required || [])
  return Object.entries(schema.properties || {}).map(([name, p]) => {
    const kind = p.enum ? 'enum' : p.type === 'integer' || p.type === 'number' ? 'number' : p.type === 'boolean' ? 'boolean' : 'string'
    const fallback = kind === 'boolean' ? false : ''
    const value = p.default === undefined ? fallback : kind === 'string' && typeof p.default !== 'string' ? JSON.stringify(p.default) : p.default
    return {
      name,
      kind,
      type: p.type,
      required: required.has(name),
      value,
      options: p.enum || [],
      description: p.description || '',
      placeholder: (p['x-ui'] && p['x-ui'].placeholder) || '',
      structured: p.type === 'array' || p.type === 'object',
    }
  })
}

export function valuesOf(fields) {
  const values = {}
  for (const f of fields) {
    if (f.value === '' || f.value === null || f.value === undefined) continue
    if (f.kind === 'number') values[f.name] = Number(f.value)
    else if (f.structured) {
      try {
        values[f.name] = JSON.parse(f.value)
      } catch {
        values[f.name] = f.value // sent as text: the server names the field that is wrong
      }
    } else values[f.name] = f.value
  }
  return values
}

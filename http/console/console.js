// The sandboxd console: the org's sandboxes, live from the event log (one
// long poll, GET /events/sandboxes?wait=25, not a polling loop), their
// metrics, logs and events, and the org's event timeline. Everything shown
// comes from the API with the key the user signs in with. Text from
// sandboxes and users (metadata, log lines) is only ever set as text, never
// as HTML.
'use strict'

// closers: what the open view holds that must end with it (a terminal's socket).
const state = { key: sessionStorage.getItem('sandboxd-key') || '', cursor: '', charts: [], closers: [], view: 0 }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v)
    else node.setAttribute(k, v)
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')))
  return node
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status }
}

async function api(method, path, body) {
  const headers = { 'X-API-Key': state.key }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  let data = null
  try { data = text ? JSON.parse(text) : null } catch { data = text }
  if (!res.ok) throw new ApiError(res.status, (data && data.message) || `HTTP ${res.status}`)
  return { data, headers: res.headers }
}

function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

function metadataText(m) {
  return m && Object.keys(m).length ? Object.entries(m).map(([k, v]) => `${k}=${v}`).join(', ') : '—'
}

// A coloured label: `look` is one of the states' colours (running: green,
// paused: yellow, error: red).
function badge(look, text) { return el('span', { class: `state ${look}` }, text) }
function stateBadge(s) { return badge(s, s) }

function show(...nodes) {
  for (const c of state.charts) c.destroy()
  state.charts = []
  for (const close of state.closers) close()
  state.closers = []
  const main = document.getElementById('main')
  main.replaceChildren(...nodes)
}

// -- live updates -------------------------------------------------------------

// Whoever shows something that events change registers here; one long poll
// feeds them all.
const listeners = new Set()

async function headCursor() {
  const { data } = await api('GET', '/events/audit/head')
  return data.seq.toString(16)
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function follow() {
  const mine = ++state.follower
  state.cursor = ''
  while (mine === state.follower && state.key) {
    try {
      if (!state.cursor) state.cursor = await headCursor()
      const asked = Date.now()
      const { data, headers } = await api('GET', `/events/sandboxes?orderAsc=true&limit=100&wait=25&cursor=${state.cursor}`)
      if (mine !== state.follower) return
      if (data.length) {
        state.cursor = headers.get('X-Next-Token') || (await headCursor())
        for (const f of listeners) f(data)
      } else if (Date.now() - asked < 1000) {
        await sleep(1000) // an empty answer at once (a busy server): never a tight loop
      }
    } catch (e) {
      if (e.status === 401) return signOut()
      await sleep(3000) // the server restarts: try again
    }
  }
}
state.follower = 0

// -- views --------------------------------------------------------------------

async function sandboxesView() {
  const body = el('tbody')
  const updated = el('span', { class: 'live' }, '● live')
  show(el('h1', {}, 'Sandboxes ', updated),
       el('table', { id: 'sandboxes' },
          el('thead', {}, el('tr', {}, ['Sandbox', 'Template', 'State', 'Age', 'Ends', 'Metadata', ''].map((h) => el('th', {}, h)))),
          body))
  const view = ++state.view
  async function refresh() {
    if (view !== state.view) return
    const { data } = await api('GET', '/v2/sandboxes?state=running,paused&limit=100')
    body.replaceChildren(...data.map((s) => el('tr', { class: 'row', 'data-id': s.sandboxID, onclick: () => { location.hash = `#/sandboxes/${s.sandboxID}` } },
      el('td', { class: 'mono' }, s.sandboxID),
      el('td', {}, s.templateID),
      el('td', {}, stateBadge(s.state)),
      el('td', {}, age(s.startedAt)),
      el('td', {}, new Date(s.endAt).toLocaleTimeString()),
      el('td', {}, metadataText(s.metadata)),
      el('td', { onclick: (e) => e.stopPropagation() }, actions(s)))))
    if (!data.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No sandboxes. Create one with an SDK or `sandboxd sandbox create`.')))
  }
  const onEvents = () => refresh().catch(() => {})
  listeners.clear()
  listeners.add(onEvents)
  await refresh()
}

function actions(s) {
  const act = (label, fn, cls = '') => el('button', { class: cls, 'data-action': label.toLowerCase(), onclick: async () => {
    try { await fn() } catch (e) { alert(e.message) }
  } }, label)
  const out = []
  if (s.state === 'running') out.push(act('Pause', () => api('POST', `/sandboxes/${s.sandboxID}/pause`)))
  if (s.state === 'paused') out.push(act('Resume', () => api('POST', `/sandboxes/${s.sandboxID}/connect`, { timeout: 300 })))
  out.push(act('+10 min', () => api('POST', `/sandboxes/${s.sandboxID}/timeout`, {
    timeout: Math.round(Math.max(0, Date.parse(s.endAt) - Date.now()) / 1000) + 600 })))
  out.push(act('Kill', () => api('DELETE', `/sandboxes/${s.sandboxID}`), 'danger'))
  return out
}

async function sandboxView(id) {
  const view = ++state.view
  const info = el('dl')
  const cpu = el('canvas', { id: 'cpu-chart' })
  const mem = el('canvas', { id: 'mem-chart' })
  const disk = el('canvas', { id: 'disk-chart' })
  const logs = el('pre', { class: 'logs', id: 'logs' })
  const terminal = el('div', { class: 'terminal-box' },
    el('button', { id: 'open-terminal', onclick: () => openTerminal(id, terminal) }, 'Open a terminal'))
  const files = el('div', { class: 'files', id: 'files' })
  const events = el('tbody')
  const head = el('div')
  show(el('h1', {}, 'Sandbox ', el('span', { class: 'mono' }, id)), head, info,
       el('div', { class: 'cards' },
          el('div', { class: 'card' }, el('h2', {}, 'CPU %'), el('div', { class: 'chart' }, cpu)),
          el('div', { class: 'card' }, el('h2', {}, 'Memory MiB'), el('div', { class: 'chart' }, mem)),
          el('div', { class: 'card' }, el('h2', {}, 'Disk MiB'), el('div', { class: 'chart' }, disk))),
       el('h2', {}, 'Terminal'), terminal,
       el('h2', {}, 'Files'), files,
       el('h2', {}, 'Logs'), logs,
       el('h2', {}, 'Events'), el('table', {}, el('thead', {}, el('tr', {}, ['Time', 'Type', 'Event'].map((h) => el('th', {}, h)))), events))
  const line = (canvas, label, color) => {
    const chart = new Chart(canvas, {
      type: 'line',
      data: { labels: [], datasets: [{ label, data: [], borderColor: color, backgroundColor: color + '33', fill: true, pointRadius: 0, tension: .25 }] },
      options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } }, plugins: { legend: { display: false } } },
    })
    state.charts.push(chart)
    return chart
  }
  const cpuChart = line(cpu, 'CPU %', '#2563eb')
  const memChart = line(mem, 'Memory MiB', '#059669')
  const diskChart = line(disk, 'Disk MiB', '#9333ea')
  fileBrowser(id, files, view)
  async function refresh() {
    if (view !== state.view) return
    let s
    try {
      s = (await api('GET', `/sandboxes/${id}`)).data
    } catch (e) {
      if (e.status === 404) { head.replaceChildren(el('p', { class: 'muted' }, 'This sandbox is gone.')); return }
      throw e
    }
    info.replaceChildren(...[['Template', s.templateID], ['State', stateBadge(s.state)], ['Started', s.startedAt],
      ['Ends', s.endAt], ['CPUs', s.cpuCount], ['Memory', `${s.memoryMB} MiB`], ['Metadata', metadataText(s.metadata)]]
      .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]))
    head.replaceChildren(...actions({ sandboxID: id, state: s.state, endAt: s.endAt }))
    const metrics = (await api('GET', `/sandboxes/${id}/metrics`)).data
    const labels = metrics.map((m) => new Date(m.timestamp).toLocaleTimeString())
    cpuChart.data.labels = labels
    cpuChart.data.datasets[0].data = metrics.map((m) => m.cpuUsedPct)
    memChart.data.labels = labels
    memChart.data.datasets[0].data = metrics.map((m) => Math.round(m.memUsed / 1048576))
    diskChart.data.labels = labels
    diskChart.data.datasets[0].data = metrics.map((m) => Math.round(m.diskUsed / 1048576))
    cpuChart.update()
    memChart.update()
    diskChart.update()
    const log = (await api('GET', `/v2/sandboxes/${id}/logs?direction=backward&limit=200`)).data.logs.reverse()
    logs.textContent = log.map((l) => `${l.timestamp} ${l.level.padEnd(5)} ${l.message}`).join('\n') || '(no logs yet)'
    logs.scrollTop = logs.scrollHeight
    const evs = (await api('GET', `/events/sandboxes/${id}?limit=50`)).data
    events.replaceChildren(...evs.map((e) => el('tr', {}, el('td', {}, e.timestamp), el('td', {}, e.type), el('td', { class: 'mono' }, e.id))))
  }
  listeners.clear()
  listeners.add((evs) => { if (evs.some((e) => e.sandboxId === id)) refresh().catch(() => {}) })
  await refresh()
  // Metrics are sampled, not events: the charts move on every 5 s.
  const timer = setInterval(() => { if (view !== state.view) clearInterval(timer); else refresh().catch(() => {}) }, 5000)
}

// A shell on a PTY in the sandbox (xterm.js): envd's GET /terminal, a
// WebSocket opened with a one-minute ticket from POST /sandboxes/:id/terminal
// (a browser's WebSocket carries no API key). Keystrokes and output travel as
// binary messages, a resize as {"resize":{cols,rows}}; the shell is killed
// when the socket closes, which it does when the view changes.
async function openTerminal(id, box) {
  const view = state.view
  // Links in the output open only as http(s), in a new tab without access to this one.
  const linkHandler = { activate: (_, uri) => { if (/^https?:\/\//i.test(uri)) window.open(uri, '_blank', 'noopener') } }
  const term = new Terminal({ cursorBlink: true, fontSize: 13, convertEol: false, linkHandler })
  const fit = new FitAddon.FitAddon()
  term.loadAddon(fit)
  const screen = el('div', { class: 'terminal', id: 'terminal' })
  const status = el('p', { class: 'muted', id: 'terminal-status' }, 'connecting…')
  const again = el('button', { onclick: () => openTerminal(id, box) }, 'Open again')
  box.replaceChildren(screen, status)
  term.open(screen)
  fit.fit()
  window.sandboxdTerminal = term // for the console's tests
  let ws = null
  const onResize = () => fit.fit()
  window.addEventListener('resize', onResize)
  // It ends with the view, whatever stage it reached.
  const close = () => { window.removeEventListener('resize', onResize); if (ws) ws.close(); term.dispose() }
  state.closers.push(close)
  const ended = (text, look) => { status.textContent = text; status.className = look; status.after(again) }
  let ticket
  try {
    ticket = (await api('POST', `/sandboxes/${id}/terminal`)).data
  } catch (e) {
    if (e.status === 401) return signOut()
    return ended(e.message, 'error')
  }
  if (view !== state.view) return close() // the page moved on meanwhile: no shell
  ws = new WebSocket(`${ticket.url}&cols=${term.cols}&rows=${term.rows}`)
  ws.binaryType = 'arraybuffer'
  const encoder = new TextEncoder()
  ws.onopen = () => { status.textContent = 'connected'; term.focus() }
  ws.onmessage = (m) => {
    if (typeof m.data !== 'string') return term.write(new Uint8Array(m.data))
    let msg = {}
    try { msg = JSON.parse(m.data) } catch { msg = { error: 'the server sent a message that is not JSON' } }
    if (msg.exit) ended(`the shell exited (${msg.exit.exitCode})`, 'muted')
    else if (msg.error) ended(msg.error, 'error')
  }
  ws.onclose = (ev) => {
    if (status.textContent === 'connected' || status.textContent === 'connecting…')
      ended(ev.reason ? `disconnected: ${ev.reason}` : 'disconnected', 'muted')
  }
  term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d)) })
  term.onBinary((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0))) })
  term.onResize(({ cols, rows }) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: { cols, rows } })) })
}

// A directory of the sandbox: open folders, download and remove files,
// upload into it. Through the API's file routes (the agent resolves paths
// inside the sandbox); a file over 1 MiB moves through a signed envd URL
// instead (POST /sandboxes/:id/files/links), streamed, of any size.
const maxRestFile = 1024 * 1024

// At most this many entries of a directory are shown (a sandbox may hold a million).
const maxRows = 1000

// An absolute path without ".", ".." or repeated slashes; a relative one is
// taken from the user's home, as the agent takes it.
function normalPath(path) {
  const parts = []
  for (const p of (path.startsWith('/') ? path : `/home/user/${path}`).split('/')) {
    if (p === '..') parts.pop()
    else if (p && p !== '.') parts.push(p)
  }
  return '/' + parts.join('/')
}

function fileBrowser(id, box, view) {
  let dir = '/home/user'
  let asked = 0 // the newest listing asked for: an older answer is dropped
  const where = el('input', { id: 'files-path', class: 'mono', size: 40 })
  const rows = el('tbody')
  const note = el('p', { class: 'muted', id: 'files-note' })
  const upload = el('input', { type: 'file', id: 'files-upload' })
  const q = (path) => encodeURIComponent(path)
  const join = (name) => (dir === '/' ? '' : dir) + '/' + name
  const failed = (e) => { if (e.status === 401) signOut(); else note.textContent = e.message }
  async function open(path) {
    if (view !== state.view) return
    const mine = ++asked
    path = normalPath(path)
    try {
      const { data } = await api('GET', `/sandboxes/${id}/filesystem/list?path=${q(path)}`)
      if (mine !== asked || view !== state.view) return
      dir = path
      where.value = dir
      // A name is one path segment; anything else (from a hostile agent) is not shown.
      const entries = data.entries.filter((e) => typeof e.name === 'string' && e.name && e.name !== '.' && e.name !== '..' && !e.name.includes('/'))
      const odd = data.entries.length - entries.length
      entries.sort((a, b) => (a.type === 'dir') === (b.type === 'dir') ? a.name.localeCompare(b.name) : a.type === 'dir' ? -1 : 1)
      const hidden = [entries.length > maxRows ? `${entries.length - maxRows} more entries not shown` : '',
        odd ? `${odd} entries with impossible names not shown` : ''].filter(Boolean).join('; ')
      if (hidden) note.textContent = hidden // else what the last action said stays
      rows.replaceChildren(...entries.slice(0, maxRows).map((e) => el('tr', { class: 'row' },
        el('td', { class: 'mono' }, e.type === 'dir' ? el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); open(join(e.name)) } }, e.name + '/') : e.name),
        el('td', {}, e.type), el('td', {}, e.type === 'file' ? e.size : ''),
        el('td', {}, e.mtime_ms ? new Date(e.mtime_ms).toLocaleString() : ''),
        el('td', {},
          e.type === 'file' ? el('button', { onclick: () => download(join(e.name), e.name, e.size) }, 'Download') : '',
          el('button', { class: 'danger', onclick: () => remove(join(e.name), e.type === 'dir') }, 'Delete')))))
    } catch (e) {
      if (mine === asked) failed(e)
    }
  }
  async function link(path, operation) {
    return (await api('POST', `/sandboxes/${id}/files/links`, { path, operation })).data.url
  }
  async function download(path, name, size) {
    try {
      if (size > maxRestFile) {
        // envd answers it as an attachment: the browser saves it, the page stays.
        el('a', { href: await link(path, 'read') }).click()
        note.textContent = `downloading ${name} (${size} bytes)`
        return
      }
      const { data } = await api('GET', `/sandboxes/${id}/filesystem?path=${q(path)}`)
      const bytes = Uint8Array.from(atob(data.content), (c) => c.charCodeAt(0))
      const a = el('a', { href: URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' })), download: name })
      a.click()
      setTimeout(() => URL.revokeObjectURL(a.href), 10000)
      note.textContent = `downloaded ${name} (${bytes.length} bytes)`
    } catch (e) { failed(e) }
  }
  async function remove(path, isDir) {
    if (!confirm(isDir ? `Delete ${path} and everything in it?` : `Delete ${path}?`)) return
    try { await api('DELETE', `/sandboxes/${id}/filesystem?path=${q(path)}`); open(dir) } catch (e) { failed(e) }
  }
  upload.addEventListener('change', async () => {
    const file = upload.files[0]
    if (!file) return
    try {
      note.textContent = `uploading ${file.name}…`
      if (file.size > maxRestFile) {
        const form = new FormData()
        form.append('file', file, file.name)
        const res = await fetch(await link(join(file.name), 'write'), { method: 'POST', body: form })
        if (!res.ok) throw new Error((await res.json().catch(() => ({}))).message || `HTTP ${res.status}`)
      } else {
        const bytes = new Uint8Array(await file.arrayBuffer())
        let bin = ''
        for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
        await api('POST', `/sandboxes/${id}/filesystem`, { path: join(file.name), content: btoa(bin) })
      }
      note.textContent = `uploaded ${file.name} (${file.size} bytes)`
      upload.value = ''
      open(dir)
    } catch (e) { failed(e) }
  })
  box.replaceChildren(
    el('div', { class: 'path' }, where,
       el('button', { onclick: () => open(where.value.trim() || '/') }, 'Open'),
       el('button', { onclick: () => open(dir + '/..') }, 'Up'),
       el('label', {}, 'Upload: ', upload)),
    el('table', {}, el('thead', {}, el('tr', {}, ['Name', 'Type', 'Size', 'Modified', ''].map((h) => el('th', {}, h)))), rows),
    note)
  where.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') open(where.value.trim() || '/') })
  open(dir)
}

// The sandbox lifecycle's event types (core/event.cpp), as webhooks and
// filters name them: sandbox.lifecycle.<one of these>.
const lifecycle = ['created', 'updated', 'paused', 'resumed', 'killed']

async function eventsView() {
  const view = ++state.view
  const type = el('select', { id: 'type-filter' }, el('option', { value: '' }, 'every type'),
    ...lifecycle.map((t) => el('option', { value: `sandbox.lifecycle.${t}` }, t)))
  const sandbox = el('input', { id: 'sandbox-filter', placeholder: 'sandbox id' })
  const body = el('tbody')
  const head = el('p', { class: 'muted' })
  const verdict = el('span', { id: 'verify-result' })
  const verify = el('button', { id: 'verify', onclick: async () => {
    verify.disabled = true
    verdict.className = 'muted'
    verdict.textContent = 'walking the chain…'
    try {
      const v = (await api('POST', '/events/audit/verify')).data
      verdict.className = v.ok ? 'ok' : 'error'
      verdict.textContent = v.ok
        ? `The chain holds: ${v.checked} events checked up to #${v.head.seq} (${v.tookMs} ms).`
        : `The chain breaks at #${v.brokenSeq}: ${v.reason} (${v.checked} events checked before it).`
    } catch (e) {
      if (e.status === 401) return signOut()
      verdict.className = 'error'
      verdict.textContent = e.message
    } finally { verify.disabled = false }
  } }, 'Verify the chain')
  show(el('h1', {}, 'Events'), head, el('p', {}, verify, ' ', verdict),
       el('div', { class: 'filters' }, type, sandbox, el('button', { onclick: () => refresh() }, 'Filter')),
       el('table', { id: 'events' }, el('thead', {}, el('tr', {}, ['Time', 'Type', 'Sandbox', 'Event id'].map((h) => el('th', {}, h)))), body))
  async function refresh() {
    if (view !== state.view) return
    const q = new URLSearchParams({ limit: '100' })
    if (type.value) q.set('types', type.value)
    const path = sandbox.value.trim() ? `/events/sandboxes/${encodeURIComponent(sandbox.value.trim())}` : '/events/sandboxes'
    const evs = (await api('GET', `${path}?${q}`)).data
    body.replaceChildren(...evs.map((e) => el('tr', {}, el('td', {}, e.timestamp), el('td', {}, e.type), el('td', { class: 'mono' }, e.sandboxId), el('td', { class: 'mono' }, e.id))))
    const h = (await api('GET', '/events/audit/head')).data
    head.textContent = `Audit chain head: event #${h.seq}, ${h.hash}.`
  }
  listeners.clear()
  listeners.add(() => refresh().catch(() => {}))
  await refresh()
}

async function webhooksView() {
  const view = ++state.view
  const body = el('tbody')
  const name = el('input', { id: 'hook-name', placeholder: 'name', required: '' })
  const url = el('input', { id: 'hook-url', placeholder: 'https://…', required: '', size: 40 })
  const secret = el('input', { id: 'hook-secret', placeholder: 'signature secret', required: '' })
  const types = lifecycle.map((t) => el('label', {}, el('input', { type: 'checkbox', value: `sandbox.lifecycle.${t}`, checked: '' }), ` ${t}`))
  const error = el('p', { class: 'error', id: 'hook-error' })
  const form = el('form', { id: 'hook-form', class: 'card', onsubmit: async (ev) => {
    ev.preventDefault()
    error.textContent = ''
    try {
      await api('POST', '/events/webhooks', { name: name.value, url: url.value, signatureSecret: secret.value,
        events: types.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value) })
      form.reset()
      await refresh()
    } catch (e) { error.textContent = e.message }
  } }, el('h2', {}, 'New webhook'), el('div', { class: 'filters' }, name, url, secret), el('div', { class: 'filters' }, types),
    el('button', { type: 'submit' }, 'Create'), error)
  show(el('h1', {}, 'Webhooks'),
       el('table', { id: 'webhooks' }, el('thead', {}, el('tr', {}, ['Name', 'URL', 'Events', 'Enabled', ''].map((h) => el('th', {}, h)))), body),
       el('h2', {}, ''), form)
  async function refresh() {
    if (view !== state.view) return
    const hooks = (await api('GET', '/events/webhooks')).data
    body.replaceChildren(...hooks.map((w) => el('tr', { class: 'row', 'data-id': w.id, onclick: () => { location.hash = `#/webhooks/${w.id}` } },
      el('td', {}, w.name), el('td', { class: 'mono' }, w.url), el('td', {}, w.events.map((t) => t.replace('sandbox.lifecycle.', '')).join(', ')),
      el('td', {}, w.enabled ? 'yes' : 'no'),
      el('td', { onclick: (e) => e.stopPropagation() },
        el('button', { 'data-action': w.enabled ? 'disable' : 'enable', onclick: async () => {
          await api('PATCH', `/events/webhooks/${w.id}`, { enabled: !w.enabled }); await refresh() } }, w.enabled ? 'Disable' : 'Enable'),
        el('button', { class: 'danger', 'data-action': 'delete', onclick: async () => {
          if (confirm(`Delete webhook ${w.name}?`)) { await api('DELETE', `/events/webhooks/${w.id}`); await refresh() } } }, 'Delete')))))
    if (!hooks.length) body.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No webhooks yet.')))
  }
  listeners.clear()
  await refresh()
}

async function webhookView(id) {
  const view = ++state.view
  const w = (await api('GET', `/events/webhooks/${id}`)).data
  if (view !== state.view) return // navigated away meanwhile
  const body = el('tbody')
  show(el('h1', {}, 'Webhook ', w.name), el('p', { class: 'mono' }, w.url),
       el('table', { id: 'deliveries' }, el('thead', {}, el('tr', {}, ['Event', 'Sandbox', 'Status', 'Attempts', ''].map((h) => el('th', {}, h)))), body))
  async function refresh() {
    if (view !== state.view) return false
    const list = (await api('GET', `/events/webhooks/${id}/deliveries?limit=50`)).data.data
    body.replaceChildren(...list.map((d) => el('tr', { 'data-event': d.eventId },
      el('td', {}, d.eventType), el('td', { class: 'mono' }, d.sandboxId), el('td', {}, badge(d.status === 'success' ? 'running' : d.status === 'failed' ? 'error' : 'paused', d.status)),
      el('td', { class: 'attempts' }, d.attempts.map((a) => el('div', {}, `${a.timestamp} ${a.status}`,
        a.responseHttpStatusCode ? ` HTTP ${a.responseHttpStatusCode}` : '', a.errorMessage ? ` ${a.errorMessage}` : '', ` (${a.durationMs} ms)`))),
      el('td', {}, el('button', { 'data-action': 'redeliver', onclick: async () => {
        await api('POST', `/events/webhooks/${id}/deliveries/${d.eventId}/redeliver`); setTimeout(() => refresh().catch(() => {}), 500) } }, 'Redeliver')))))
    if (!list.length) body.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No deliveries yet.')))
    return true
  }
  listeners.clear()
  listeners.add(() => setTimeout(() => refresh().catch(() => {}), 500))
  await refresh()
  // Attempts are not events: while on this page, look again every 3 s.
  const timer = setInterval(async () => { if (!(await refresh().catch(() => true))) clearInterval(timer) }, 3000)
}

async function templatesView() {
  const view = ++state.view
  const body = el('tbody')
  const logsTitle = el('h2', { hidden: '' })
  const logs = el('pre', { class: 'logs', id: 'build-logs', hidden: '' })
  const snapshots = el('tbody')
  const snapNote = el('p', { class: 'error' })
  show(el('h1', {}, 'Templates and snapshots'),
       el('table', { id: 'templates' }, el('thead', {}, el('tr', {}, ['Template', 'Names', 'Status', 'Progress', 'CPUs', 'Memory', 'Sandboxes', ''].map((h) => el('th', {}, h)))), body),
       logsTitle, logs,
       el('h2', {}, 'Snapshots'), el('table', { id: 'snapshots' }, el('thead', {}, el('tr', {}, ['Snapshot', 'Names', ''].map((h) => el('th', {}, h)))), snapshots),
       snapNote)
  // The org's snapshots (POST /sandboxes/:id/snapshots makes them); a
  // sandbox starts from one as from a template.
  async function listSnapshots() {
    const list = (await api('GET', '/snapshots')).data
    snapshots.replaceChildren(...(list.length ? list.map((x) => el('tr', { 'data-id': x.snapshotID },
      el('td', { class: 'mono' }, x.snapshotID), el('td', {}, (x.names || []).join(', ')),
      el('td', {}, el('button', { 'data-action': 'start', onclick: async () => {
        try {
          const sb = (await api('POST', '/sandboxes', { templateID: x.snapshotID })).data
          location.hash = `#/sandboxes/${sb.sandboxID}`
        } catch (e) { snapNote.textContent = e.message }
      } }, 'Start a sandbox'))))
      : [el('tr', {}, el('td', { colspan: 3, class: 'muted' }, 'No snapshots. Take one with sandbox.createSnapshot() or POST /sandboxes/:id/snapshots.'))]))
  }
  listSnapshots().catch((e) => { snapNote.textContent = e.message })
  // An org's own template: its newest build's log, followed while it builds
  // (GET .../status?logsOffset=N gives the lines past N).
  let following = 0
  // At most this many lines are kept on the page (a build may log far more).
  const maxLines = 5000
  async function followLogs(t) {
    const mine = ++following
    const current = () => mine === following && view === state.view
    const name = (t.names || t.aliases || [t.templateID])[0]
    const builds = (await api('GET', `/templates/${t.templateID}`)).data.builds || []
    if (!builds.length || !current()) return
    const build = builds[0].buildID
    logsTitle.hidden = false
    logs.hidden = false
    let lines = []
    let offset = 0
    for (;;) {
      const st = (await api('GET', `/templates/${t.templateID}/builds/${build}/status?logsOffset=${offset}&limit=1000`)).data
      if (!current()) return // another build's log, or another page, now
      lines = lines.concat(st.logEntries.map((e) => `${e.timestamp} ${(e.level || '').padEnd(5)} ${e.message}`))
      if (lines.length > maxLines) lines = lines.slice(-maxLines)
      offset += st.logEntries.length
      logs.textContent = lines.join('\n')
      if (st.logEntries.length) logs.scrollTop = logs.scrollHeight
      logsTitle.textContent = `Build ${build} of ${name}: ${st.status}`
      if (st.status !== 'building' && st.status !== 'waiting' && st.logEntries.length < 1000) return
      if (st.logEntries.length < 1000) await sleep(1000) // a full page: more is waiting
    }
  }
  async function refresh() {
    if (view !== state.view) return false
    const list = (await api('GET', '/templates')).data
    body.replaceChildren(...list.map((t) => {
      const p = t.buildProgress
      const progress = p && t.buildStatus !== 'ready' ? (p.error || `${p.steps} steps${p.lastStep ? ': ' + p.lastStep : ''}`) : '—'
      return el('tr', { 'data-id': t.templateID }, el('td', { class: 'mono' }, t.templateID), el('td', {}, (t.names || t.aliases || []).join(', ')),
        el('td', {}, badge(t.buildStatus === 'ready' ? 'running' : t.buildStatus === 'error' ? 'error' : 'paused', t.buildStatus)),
        el('td', { class: 'mono' }, progress), el('td', {}, t.cpuCount), el('td', {}, `${t.memoryMB} MiB`), el('td', {}, t.spawnCount ?? 0),
        el('td', {}, t.public === false ? el('button', { 'data-action': 'logs', onclick: () => followLogs(t).catch((e) => { if (e.status === 401) return signOut(); logs.hidden = false; logs.textContent = e.message }) }, 'Build log') : ''))
    }))
    return list.some((t) => t.buildStatus === 'building' || t.buildStatus === 'waiting')
  }
  listeners.clear()
  // Builds are not events: while one goes on, look again every 3 s.
  if (await refresh()) {
    const timer = setInterval(async () => { if (!(await refresh().catch(() => false))) clearInterval(timer) }, 3000)
  }
}

// -- sign-in and routing ------------------------------------------------------

function signOut() {
  state.key = ''
  state.follower++
  state.view++ // the open view's timers stop with it
  sessionStorage.removeItem('sandboxd-key')
  route()
}

function signInView() {
  document.getElementById('nav').hidden = true
  document.getElementById('signout').hidden = true
  document.getElementById('whoami').textContent = ''
  show(document.getElementById('signin').content.cloneNode(true))
  document.getElementById('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault()
    state.key = document.getElementById('key').value.trim()
    try {
      await api('GET', '/v2/sandboxes?limit=1')
      sessionStorage.setItem('sandboxd-key', state.key)
      follow()
      route()
    } catch (e) {
      state.key = ''
      document.getElementById('signin-error').textContent = e.status === 401 ? 'That key is not valid here.' : e.message
    }
  })
}

async function route() {
  if (!state.key) return signInView()
  document.getElementById('nav').hidden = false
  document.getElementById('signout').hidden = false
  document.getElementById('whoami').textContent = 'signed in'
  const hash = location.hash || '#/sandboxes'
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', hash.startsWith(a.getAttribute('href')))
  const view = state.view
  try {
    const m = hash.match(/^#\/sandboxes\/([a-z0-9]+)$/)
    const hook = hash.match(/^#\/webhooks\/([0-9a-f-]+)$/)
    if (m) await sandboxView(m[1])
    else if (hook) await webhookView(hook[1])
    else if (hash.startsWith('#/webhooks')) await webhooksView()
    else if (hash.startsWith('#/templates')) await templatesView()
    else if (hash.startsWith('#/events')) await eventsView()
    else await sandboxesView()
  } catch (e) {
    if (e.status === 401) return signOut()
    if (state.view === view + 1) show(el('p', { class: 'error' }, e.message)) // still this view's page
  }
}

document.getElementById('signout').addEventListener('click', signOut)
window.addEventListener('hashchange', route)
if (state.key) follow()
route()

/**
 * The one page of `wotd serve`: today's word card (meaning, why it was chosen), like and
 * dislike buttons, and the last 30 days. Plain HTML, CSS and a small script (no build step);
 * every value from the API is put in with `textContent`, never as HTML. The script is inline
 * and allowed by its sha256 in the Content-Security-Policy, so nothing else can run.
 */
import { createHash } from 'node:crypto'

const SCRIPT = String.raw`
const params = new URLSearchParams(location.search)
const token = params.get('token')
const $ = (id) => document.getElementById(id)
const userInput = $('user')
userInput.value = params.get('user') || localStorage.getItem('wotd-user') || 'you'
let current = null

async function api(path, body) {
  const headers = { accept: 'application/json' }
  if (token) headers.authorization = 'Bearer ' + token
  if (body) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method: body ? 'POST' : 'GET', headers, body: body ? JSON.stringify(body) : undefined })
  const data = await res.json().catch(() => ({ error: { message: res.statusText } }))
  if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText)
  return data
}

function setText(id, text) {
  const el = $(id)
  el.textContent = text || ''
  el.hidden = !text
}

function showError(err) {
  setText('error', err ? String(err.message || err) : '')
}

function renderCard(day, profile) {
  current = day
  $('word').textContent = day.word
  setText('pos', day.partOfSpeech)
  setText('definition', day.definition)
  setText('example', day.example ? '"' + day.example + '"' : '')
  setText('meaning', day.meaning ? 'Meaning: ' + day.meaning : '')
  setText('why', 'Why: ' + day.reason)
  $('date').textContent = day.date
  renderVerdict(profile)
}

function verdictOf(profile, word) {
  if (profile.liked.some((l) => l.word === word)) return 'liked'
  if (profile.disliked.some((l) => l.word === word)) return 'disliked'
  return ''
}

function renderVerdict(profile) {
  const v = current ? verdictOf(profile, current.word) : ''
  $('like').setAttribute('aria-pressed', String(v === 'liked'))
  $('dislike').setAttribute('aria-pressed', String(v === 'disliked'))
  setText('verdict', v ? 'You ' + v + ' this word.' : '')
  setText('taste', profile.meaning ? 'Your taste: ' + profile.meaning + ' (' + profile.liked.length + ' liked)' : 'Like a few words and the next ones will follow your taste.')
}

function renderDays(days, profile) {
  const list = $('days')
  list.replaceChildren()
  for (const d of days) {
    const li = document.createElement('li')
    const date = document.createElement('span')
    date.className = 'd'
    date.textContent = d.date
    const word = document.createElement('b')
    word.textContent = d.word
    const def = document.createElement('span')
    def.className = 'def'
    def.textContent = d.definition || ''
    li.append(date, ' ', word, ' ', def)
    const v = verdictOf(profile, d.word)
    if (v) {
      const mark = document.createElement('span')
      mark.className = 'mark ' + v
      mark.textContent = v
      li.append(' ', mark)
    }
    li.dataset.word = d.word
    list.append(li)
  }
}

async function load() {
  showError(null)
  const user = userInput.value.trim()
  localStorage.setItem('wotd-user', user)
  const q = 'user=' + encodeURIComponent(user)
  try {
    const day = await api('/api/today?' + q + (params.get('date') ? '&date=' + encodeURIComponent(params.get('date')) : ''))
    const [profile, days] = await Promise.all([api('/api/profile?' + q), api('/api/days?' + q)])
    renderCard(day, profile)
    renderDays(days.days, profile)
    document.body.dataset.ready = 'true'
  } catch (err) {
    showError(err)
  }
}

async function rate(kind) {
  if (!current) return
  showError(null)
  try {
    const profile = await api('/api/' + kind, { user: userInput.value.trim(), words: [current.word] })
    renderVerdict(profile)
    const days = await api('/api/days?user=' + encodeURIComponent(userInput.value.trim()))
    renderDays(days.days, profile)
  } catch (err) {
    showError(err)
  }
}

$('like').addEventListener('click', () => rate('like'))
$('dislike').addEventListener('click', () => rate('dislike'))
$('who').addEventListener('submit', (e) => {
  e.preventDefault()
  load()
})
load()
`

const STYLE = `
:root { color-scheme: light dark; --accent: #3b5bdb; }
body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }
header { display: flex; justify-content: space-between; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
h1 { font-size: 1.1rem; margin: 0; }
form { display: flex; gap: .5rem; }
input { font: inherit; padding: .25rem .5rem; }
.card { border: 1px solid #8884; border-radius: 12px; padding: 1.5rem; margin: 1.5rem 0; }
#word { font-size: 2.5rem; margin: .25rem 0; }
#pos { font-style: italic; opacity: .8; }
#example { font-style: italic; }
#meaning, #why, #taste, #verdict { opacity: .8; font-size: .95rem; margin: .25rem 0; }
.buttons { display: flex; gap: .75rem; margin-top: 1rem; }
button { font: inherit; padding: .4rem 1rem; border-radius: 8px; border: 1px solid var(--accent); background: none; color: inherit; cursor: pointer; }
button[aria-pressed="true"] { background: var(--accent); color: white; }
#error { color: #c92a2a; }
ol { padding-left: 1.2rem; }
li { margin: .3rem 0; }
.d { font-variant-numeric: tabular-nums; opacity: .7; }
.def { opacity: .8; }
.mark { font-size: .8rem; border-radius: 4px; padding: 0 .3rem; border: 1px solid currentColor; }
.mark.liked { color: #2b8a3e; } .mark.disliked { color: #c92a2a; }
`

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wotd: word of the day</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>Word of the day <span id="date"></span></h1>
  <form id="who"><label for="user">Name</label><input id="user" name="user" maxlength="200" autocomplete="username"><button type="submit">Show</button></form>
</header>
<p id="error" role="alert" hidden></p>
<section class="card" aria-live="polite">
  <div id="word"></div>
  <div id="pos" hidden></div>
  <p id="definition" hidden></p>
  <p id="example" hidden></p>
  <p id="meaning" hidden></p>
  <p id="why" hidden></p>
  <div class="buttons">
    <button id="like" type="button" aria-pressed="false">Like</button>
    <button id="dislike" type="button" aria-pressed="false">Dislike</button>
  </div>
  <p id="verdict" hidden></p>
  <p id="taste" hidden></p>
</section>
<h2>The last 30 days</h2>
<ol id="days"></ol>
<script>${SCRIPT}</script>
</body>
</html>
`

/** The page and the Content-Security-Policy that lets exactly its script and style run. */
export const PAGE = {
  html: HTML,
  csp: [
    "default-src 'none'",
    `script-src 'sha256-${createHash('sha256').update(SCRIPT).digest('base64')}'`,
    `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
}

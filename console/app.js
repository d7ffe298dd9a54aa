// The operator console: a token prompt, then matches, verdicts and dead letters from the internal API, refreshed
// every few seconds, with countdowns ticking in between. No framework and no build step: ES modules served as files.
import { api, token } from './api.js';
import { byId, replaceChildren } from './dom.js';
import { time } from './format.js';
import { deadLetterRow, matchDetail, matchRow, updateCountdown, verdictNodes } from './views.js';

const REFRESH_MS = 2000;
const TICK_MS = 500;

const MATCH_FILTERS = {
  'in-flight': { status: 'SCHEDULED,IN_PROGRESS' },
  provisioning: { provisioning: 'RESERVED,INSTALLING,WAITING_SIGNALS' },
  all: {},
};

const state = {
  matchPages: 1,
  deadLetterPages: 1,
  detailId: null,
  /** The dead letter whose discard awaits its confirmation, if any. */
  confirmingDiscard: null,
  refreshing: false,
  refreshAgain: false,
  timer: null,
};

function showLogin(message = '') {
  clearInterval(state.timer);
  state.timer = null;
  byId('console').hidden = true;
  byId('sign-out').hidden = true;
  byId('login').hidden = false;
  byId('login-error').textContent = message;
  byId('updated').textContent = '';
  byId('token').focus();
}

function showConsole() {
  clearInterval(state.timer);
  byId('login').hidden = true;
  byId('console').hidden = false;
  byId('sign-out').hidden = false;
  void refresh();
  state.timer = setInterval(() => void refresh(), REFRESH_MS);
}

function flash(message, kind = 'ok') {
  const node = byId('flash');
  node.textContent = message;
  node.className = `flash flash-${kind}`;
  node.hidden = false;
}

/** Every page up to `pages` of a cursor-paginated list; returns the items and the cursor after the last page. */
async function pagesOf(load, params, pages) {
  const items = [];
  let cursor;
  for (let i = 0; i < pages; i++) {
    const page = await load({ ...params, ...(cursor ? { cursor } : {}) });
    items.push(...page.items);
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return { items, nextCursor: cursor ?? null };
}

async function renderMatches() {
  const chosen = byId('match-filter').value;
  const { items, nextCursor } = await pagesOf(api.listMatches, { ...(MATCH_FILTERS[chosen] ?? {}), limit: 50 }, state.matchPages);
  // The operator changed the filter while this page loaded: the refresh queued by the change draws it.
  if (byId('match-filter').value !== chosen) return;
  replaceChildren(
    byId('match-rows'),
    items.map((m) => matchRow(m, openDetail)),
  );
  byId('match-empty').hidden = items.length > 0;
  byId('match-more').hidden = !nextCursor;
}

async function renderVerdicts() {
  const { items } = await api.listMatches({ enforcement: 'any', limit: 50 });
  const nodes = items.flatMap(verdictNodes);
  // An evidence bundle the operator opened stays open across refreshes.
  const open = new Set(
    [...byId('verdict-list').querySelectorAll('details[open]')].map(
      (d) => d.parentElement?.dataset.matchId + d.parentElement?.dataset.side,
    ),
  );
  for (const node of nodes) if (open.has(node.dataset.matchId + node.dataset.side)) node.querySelector('details').open = true;
  replaceChildren(byId('verdict-list'), nodes);
  byId('verdict-empty').hidden = nodes.length > 0;
}

async function renderDeadLetters() {
  const stateFilter = byId('dead-letter-filter').value;
  const tbody = byId('dead-letter-rows');
  const { items, nextCursor } = await pagesOf(api.listDeadLetters, { state: stateFilter, limit: 50 }, state.deadLetterPages);
  // A discard awaiting its confirmation (asked for while this page loaded, too) is not redrawn away under the pointer,
  // and a filter changed meanwhile is drawn by the refresh its change queued.
  if (state.confirmingDiscard || byId('dead-letter-filter').value !== stateFilter) return;
  const open = new Set([...tbody.querySelectorAll('details[open]')].map((d) => d.closest('tr')?.dataset.deadLetterId));
  const confirming = (id) => {
    state.confirmingDiscard = id;
  };
  const rows = items.map((letter) => deadLetterRow(letter, { replay, discard, confirming }));
  for (const row of rows) if (open.has(row.dataset.deadLetterId)) row.querySelector('details').open = true;
  replaceChildren(tbody, rows);
  byId('dead-letter-empty').hidden = items.length > 0;
  byId('dead-letter-more').hidden = !nextCursor;
}

async function renderDetail() {
  if (!state.detailId) return;
  const match = await api.getMatch(state.detailId);
  const body = byId('detail-body');
  const open = new Set([...body.querySelectorAll('details[open] > summary')].map((s) => s.textContent));
  byId('detail-title').textContent = `Match ${match.id}`;
  replaceChildren(body, matchDetail(match));
  for (const d of body.querySelectorAll('details')) if (open.has(d.querySelector('summary')?.textContent)) d.open = true;
  byId('detail').hidden = false;
}

function openDetail(id) {
  state.detailId = id;
  void renderDetail()
    .then(() => byId('detail').scrollIntoView({ block: 'nearest' }))
    .catch(handleError);
}

function handleError(error) {
  if (error?.unauthorized) {
    token.clear();
    showLogin(`The service refused the token (${error.message}). Enter it again.`);
    return;
  }
  flash(error?.message ?? String(error), 'error');
}

async function refresh() {
  if (!token.get()) return;
  // One refresh at a time; a request for another while one runs (after an action, say) runs once it ends.
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  try {
    await Promise.all([renderMatches(), renderVerdicts(), renderDeadLetters(), renderDetail()]);
    byId('updated').textContent = `updated ${time(new Date().toISOString())}`;
    tick();
  } catch (error) {
    handleError(error);
  } finally {
    state.refreshing = false;
  }
  if (state.refreshAgain) {
    state.refreshAgain = false;
    await refresh();
  }
}

/** Rewrites every countdown on the page. */
function tick() {
  for (const node of document.querySelectorAll('[data-deadline]')) updateCountdown(node);
}

async function act(what, run, id) {
  state.confirmingDiscard = null;
  try {
    await run(id);
    flash(`Dead letter ${id} ${what}.`);
  } catch (error) {
    handleError(error);
  }
  await refresh();
}

const replay = (id) => act('replayed', api.replayDeadLetter, id);
const discard = (id) => act('discarded', api.discardDeadLetter, id);

async function login(event) {
  event.preventDefault();
  const input = byId('token');
  const candidate = input.value.trim();
  input.value = '';
  if (!candidate) return;
  const button = byId('login-form').querySelector('button');
  button.disabled = true;
  byId('login-error').textContent = '';
  try {
    await api.check(candidate);
    token.set(candidate);
    showConsole();
  } catch (error) {
    showLogin(error.unauthorized ? `Token refused (${error.message}).` : `Could not check the token: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function start() {
  byId('login-form').addEventListener('submit', login);
  byId('sign-out').addEventListener('click', () => {
    token.clear();
    showLogin('Signed out.');
  });
  byId('match-filter').addEventListener('change', () => {
    state.matchPages = 1;
    void refresh();
  });
  byId('match-more').addEventListener('click', () => {
    state.matchPages++;
    void refresh();
  });
  byId('dead-letter-filter').addEventListener('change', () => {
    state.deadLetterPages = 1;
    state.confirmingDiscard = null;
    void refresh();
  });
  byId('dead-letter-more').addEventListener('click', () => {
    state.deadLetterPages++;
    void refresh();
  });
  byId('detail-close').addEventListener('click', () => {
    state.detailId = null;
    byId('detail').hidden = true;
  });
  setInterval(tick, TICK_MS);
  if (token.get()) showConsole();
  else showLogin();
}

start();

// Rendering of API data into DOM nodes. Pure with respect to the page: each function returns nodes built with h().
import { clockSkewMs } from './api.js';
import { h, jsonBlock } from './dom.js';
import { countdown, time } from './format.js';

const ACTIVE_PROVISIONING = new Set(['RESERVED', 'INSTALLING', 'WAITING_SIGNALS']);

const CHECKLIST_LABELS = {
  serverInstalled: 'server installed',
  adminHooksOk: 'admin hooks',
  overlayConnected: 'overlay',
  p1StreamLive: 'p1 live',
  p2StreamLive: 'p2 live',
  titlesContainMatchId: 'titles',
  bitrateOk: 'bitrate',
  fpsOk: 'fps',
};

const badge = (text, kind = text) => h('span', { className: `badge badge-${String(kind).toLowerCase()}`, text });

/** Sets a countdown node's text from the (server-corrected) clock. */
export function updateCountdown(node) {
  const text = countdown(node.dataset.deadline, Date.now() + clockSkewMs);
  node.textContent = text;
  node.classList.toggle('overdue', text.startsWith('overdue'));
}

/** A live countdown: shown at once, then app.js rewrites every [data-deadline] each tick. */
export function countdownNode(deadlineIso) {
  const node = h('span', { className: 'countdown', data: { deadline: deadlineIso }, title: deadlineIso });
  updateCountdown(node);
  return node;
}

function provisioningCells(match) {
  const p = match.provisioning;
  if (!p) return [h('td', { className: 'muted', text: '—' }), h('td', { className: 'muted', text: '—' })];
  const state = h('td', {}, badge(p.state), p.failureReason ? h('div', { className: 'muted small', text: p.failureReason }) : null);
  let deadline;
  if (ACTIVE_PROVISIONING.has(p.state) && p.deadlineAt) deadline = h('td', {}, countdownNode(p.deadlineAt));
  else if (p.readyAt) deadline = h('td', { className: 'muted', text: `ready ${time(p.readyAt)}` });
  else deadline = h('td', { className: 'muted', text: '—' });
  return [state, deadline];
}

function checklistCell(checklist) {
  const entries = Object.entries(checklist ?? {});
  const done = entries.filter(([, v]) => v).length;
  const missing = entries.filter(([, v]) => !v).map(([k]) => CHECKLIST_LABELS[k] ?? k);
  return h('td', { title: missing.length ? `missing: ${missing.join(', ')}` : 'complete' }, `${done}/${entries.length}`);
}

/** One side's stream health: last outcome, and the grace timer while an episode is open. */
export function streamHealthNode(match, side) {
  const s = (match.streamHealth ?? []).find((x) => x.side === side);
  if (!s) return h('span', { className: 'muted', text: match.mode === 'VERIFIED_STREAM' ? 'not sampled' : '—' });
  const ep = s.episode;
  const parts = [badge(s.lastOutcome ?? 'no sample', s.lastOutcome ?? 'unknown')];
  if (ep?.state === 'open') {
    parts.push(
      h(
        'div',
        { className: 'grace small' },
        `grace ${ep.violations.join(', ')}: `,
        ep.graceDeadlineAt ? countdownNode(ep.graceDeadlineAt) : `${Math.round(ep.elapsedMs / 1000)} s used`,
      ),
    );
  } else if (ep?.state === 'verdict') {
    parts.push(h('div', { className: 'small', text: `grace ran out ${time(ep.verdictAt)} (${ep.violations.join(', ')})` }));
  } else if (ep?.state === 'closed') {
    parts.push(h('div', { className: 'muted small', text: `recovered ${time(ep.closedAt)}` }));
  }
  return h('span', { className: 'stream', data: { side, state: ep?.state ?? 'none' } }, parts);
}

/** A row of the matches table; `onOpen(id)` opens its detail. */
export function matchRow(match, onOpen) {
  const verdicts = match.enforcement ?? [];
  return h(
    'tr',
    { data: { matchId: match.id } },
    h('td', {}, h('button', { type: 'button', className: 'link', text: match.id, onClick: () => onOpen(match.id) })),
    h('td', {}, badge(match.status), h('div', { className: 'muted small', text: match.mode })),
    ...provisioningCells(match),
    checklistCell(match.checklist),
    h('td', {}, streamHealthNode(match, 'p1')),
    h('td', {}, streamHealthNode(match, 'p2')),
    h(
      'td',
      {},
      verdicts.length
        ? verdicts.map((v) => h('div', {}, badge(v.verdict), ` ${v.side} ${v.reason}`))
        : h('span', { className: 'muted', text: '—' }),
    ),
  );
}

/** Each verdict of `match` with its evidence bundle. */
export function verdictNodes(match) {
  return (match.enforcement ?? []).map((v) => {
    const evidence = (match.evidence ?? []).find((e) => e.id === v.evidenceId);
    return h(
      'article',
      { className: 'verdict', data: { matchId: match.id, side: v.side, verdict: v.verdict } },
      h(
        'header',
        {},
        badge(v.verdict),
        h('strong', { text: ` ${match.id}` }),
        ` · ${v.side} · ${v.reason} · ${time(v.at)} · match ${match.status}`,
      ),
      h(
        'details',
        { className: 'evidence' },
        h('summary', { text: `Evidence ${v.evidenceId}${evidence ? ` (${evidence.kind})` : ' (not found)'}` }),
        evidence ? jsonBlock(evidence.bundle) : h('p', { className: 'muted', text: 'The evidence row is missing.' }),
      ),
    );
  });
}

/** A row of the dead-letter table with its actions. */
export function deadLetterRow(letter, actions) {
  const pending = letter.state === 'PENDING';
  const confirmDiscard = h('button', { type: 'button', className: 'danger', text: 'Confirm discard', hidden: true });
  const discard = h('button', {
    type: 'button',
    text: 'Discard',
    onClick: () => {
      discard.hidden = true;
      confirmDiscard.hidden = false;
      actions.confirming(letter.id);
    },
  });
  confirmDiscard.addEventListener('click', () => actions.discard(letter.id));
  return h(
    'tr',
    { data: { deadLetterId: letter.id, state: letter.state } },
    h('td', { title: letter.createdAt, text: time(letter.createdAt) }),
    h('td', { text: letter.topic }),
    h('td', {}, badge(letter.reason, 'reason')),
    h('td', { className: 'small', text: letter.detail }),
    h(
      'td',
      {},
      h(
        'details',
        {},
        h('summary', { text: letter.eventId ? `event ${letter.eventId}` : `offset ${letter.partition}/${letter.offset}` }),
        h('pre', { className: 'json', text: letter.raw }),
      ),
    ),
    h(
      'td',
      {},
      badge(letter.state),
      letter.resolution ? h('div', { className: 'muted small', text: `${letter.resolution.actor} · ${time(letter.resolution.at)}` }) : null,
    ),
    h(
      'td',
      { className: 'actions' },
      pending ? [h('button', { type: 'button', text: 'Replay', onClick: () => actions.replay(letter.id) }), discard, confirmDiscard] : null,
    ),
  );
}

function field(label, value) {
  return [h('dt', { text: label }), h('dd', {}, value ?? h('span', { className: 'muted', text: '—' }))];
}

/** The detail panel of one match: everything the view holds. */
export function matchDetail(match) {
  const p = match.provisioning;
  return [
    h(
      'dl',
      { className: 'fields' },
      field('status', badge(match.status)),
      field('mode', `${match.mode} · enforcement ${match.enforcementMode}`),
      field('entry fee', `${(match.entryFee.amountCents / 100).toFixed(2)} ${match.entryFee.currency}`),
      field(
        'players',
        match.players.map((pl) => h('div', { text: `${pl.side}: ${pl.playerId} — ${pl.streamChannels.join(', ') || 'no channels'}` })),
      ),
      field(
        'provisioning',
        p
          ? h(
              'span',
              {},
              badge(p.state),
              ` server ${p.panelServerId}`,
              ACTIVE_PROVISIONING.has(p.state) && p.deadlineAt ? [' · deadline ', countdownNode(p.deadlineAt)] : null,
              p.readyAt ? ` · ready ${time(p.readyAt)}` : null,
              p.failureReason ? ` · ${p.failureReason}` : null,
              ` · cleanup ${p.cleanup}`,
            )
          : null,
      ),
      field(
        'checklist',
        h(
          'ul',
          { className: 'checklist' },
          Object.entries(match.checklist).map(([k, v]) =>
            h('li', { className: v ? 'ok' : 'missing', text: `${v ? '✔' : '✘'} ${CHECKLIST_LABELS[k] ?? k}` }),
          ),
        ),
      ),
      field('p1 stream', streamHealthNode(match, 'p1')),
      field('p2 stream', streamHealthNode(match, 'p2')),
      field('stream waiver', match.streamWaiver ? `${match.streamWaiver.reason} (by ${match.streamWaiver.grantedBy})` : null),
      field(
        'refunds',
        match.refunds.length
          ? match.refunds.map((r) =>
              h('div', { text: `${r.playerId} ${(r.amountCents / 100).toFixed(2)} ${r.currency} — ${r.reason ?? ''}` }),
            )
          : null,
      ),
    ),
    h('h3', { text: 'Verdicts' }),
    match.enforcement.length ? verdictNodes(match) : h('p', { className: 'muted', text: 'None.' }),
    h('h3', { text: 'Evidence' }),
    match.evidence.length
      ? match.evidence.map((e) =>
          h(
            'details',
            { className: 'evidence' },
            h('summary', { text: `${e.kind} ${e.side ?? ''} ${time(e.at)} (${e.id})` }),
            jsonBlock(e.bundle),
          ),
        )
      : h('p', { className: 'muted', text: 'None.' }),
  ];
}

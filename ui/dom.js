// Small DOM helpers shared by every pane: lookup by id, cheap text writes, table cells, and the two lines of the
// page's chrome that any module may change (the notice banner and the state pill in the header).

export const $ = (id) => document.getElementById(id);

/** Sets an element's text only when it changes: an unchanged write still costs WebKit a layout and a paint. */
export function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
}

/** A table cell with its text (never HTML) and an optional class. */
export function cell(text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

/** The banner above the panes; an empty text hides it. */
export function showNotice(text) {
  $('notice').hidden = !text;
  $('notice').textContent = text || '';
}

/** The state pill in the header: its kind (running, offline, error…) picks the colour. */
export function setState(kind, text) {
  const el = $('state');
  if (el.dataset.state !== kind) el.dataset.state = kind;
  setText(el, text);
}

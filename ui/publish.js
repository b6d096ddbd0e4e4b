// The Publish pane: a test event sent to a channel through the admin API, its data checked as JSON as it is
// typed (anything else goes as a raw string).

import { api } from './api.js';
import { $ } from './dom.js';

function checkData() {
  const status = $('pub-data-status');
  const text = $('pub-data').value;
  try {
    JSON.parse(text);
    status.className = 'hint ok';
    status.textContent = 'Valid JSON.';
  } catch (e) {
    status.className = 'hint warn';
    status.textContent = 'Not JSON (' + e.message + '). It will be sent as a raw string, which Poussr v1 clients accept; Pusher clients get the string.';
  }
}

async function publish(e) {
  e.preventDefault();
  const result = $('pub-result');
  result.className = 'result';
  result.textContent = 'Sending…';
  try {
    const r = await api('/admin/api/publish', {
      method: 'POST',
      body: JSON.stringify({ channel: $('pub-channel').value.trim(), event: $('pub-event').value.trim(), data: $('pub-data').value }),
    });
    result.className = 'result ok';
    result.textContent = 'Sent: delivered to ' + r.delivered + (r.delivered === 1 ? ' subscriber.' : ' subscribers.');
  } catch (err) {
    result.className = 'result bad';
    result.textContent = 'Not sent: ' + err.message;
  }
}

export function initPublish() {
  $('pub-data').addEventListener('input', checkData);
  $('publish-form').addEventListener('submit', publish);
  checkData();
}

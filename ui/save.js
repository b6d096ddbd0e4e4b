// Saving a file the operator asked for (a recording): the desktop app writes it to the Downloads folder (a
// webview cannot download by itself) and says where; a browser downloads it.

import { invoke, tauri } from './api.js';
import { showNotice } from './dom.js';

/** Saves `text` as `name`; `count` entries, for the notice. */
export async function saveFile(name, text, count) {
  const what = count + (count === 1 ? ' entry' : ' entries');
  if (tauri) {
    try {
      const path = await invoke('save_export', { name, text });
      showNotice('Recorded ' + what + ' to ' + path);
    } catch (e) {
      showNotice('Recording failed: ' + (e.message || e));
    }
    return;
  }
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// The chat page `slm serve` shows at / : plain HTML and JavaScript, no
// external assets, talking to /v1/chat/completions with streaming.
#pragma once

namespace slm::cli {

inline constexpr const char* kChatPage = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>slm chat</title>
<style>
body{font-family:system-ui,sans-serif;max-width:48rem;margin:0 auto;padding:1rem;color:#222}
#log{height:60vh;overflow-y:auto;border:1px solid #ddd;border-radius:.5rem;padding:0 .5rem}
.msg{white-space:pre-wrap;padding:.5rem .75rem;margin:.5rem 0;border-radius:.5rem}
.user{background:#e8f0fe}.assistant{background:#f4f4f4}.error{background:#fde8e8}
textarea{width:100%;box-sizing:border-box;font:inherit}
#bar{display:flex;gap:.5rem;margin-top:.5rem}
details{margin-bottom:.5rem}
</style></head>
<body>
<h1>slm chat</h1>
<details><summary>System prompt</summary><textarea id="system" rows="2" placeholder="(none)"></textarea></details>
<div id="log"></div>
<textarea id="input" rows="3" placeholder="Message (Enter sends, Shift+Enter a new line)"></textarea>
<div id="bar"><button id="send">Send</button><button id="stop" disabled>Stop</button><button id="new">New chat</button></div>
<script>
const log = document.getElementById('log'), input = document.getElementById('input');
const sendBtn = document.getElementById('send'), stopBtn = document.getElementById('stop');
let history = [], controller = null;
function add(role, text) {
  const div = document.createElement('div');
  div.className = 'msg ' + role;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}
async function send() {
  const text = input.value;
  if (!text.trim() || controller) return;
  input.value = '';
  add('user', text);
  history.push({role: 'user', content: text});
  const messages = [];
  const system = document.getElementById('system').value;
  if (system.trim()) messages.push({role: 'system', content: system});
  const out = add('assistant', '');
  controller = new AbortController();
  sendBtn.disabled = true; stopBtn.disabled = false;
  let answer = '';
  try {
    const res = await fetch('/v1/chat/completions', {method: 'POST', signal: controller.signal,
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({messages: messages.concat(history), stream: true})});
    if (!res.ok) throw new Error((await res.json()).error.message);
    const reader = res.body.getReader(), decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let at;
      while ((at = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, at); buffer = buffer.slice(at + 2);
        if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
        const chunk = JSON.parse(event.slice(6));
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          answer += delta.content;
          out.append(delta.content);  // appended, not rewritten: a long answer stays cheap
          log.scrollTop = log.scrollHeight;  // the input and buttons stay where they are
        }
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') { out.className = 'msg error'; out.textContent = String(e.message || e); }
  }
  if (answer) history.push({role: 'assistant', content: answer});
  controller = null;
  sendBtn.disabled = false; stopBtn.disabled = true;
}
sendBtn.onclick = send;
stopBtn.onclick = () => { if (controller) controller.abort(); };
document.getElementById('new').onclick = () => { if (controller) controller.abort(); history = []; log.textContent = ''; };
input.addEventListener('keydown', e => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); } });
</script>
</body></html>
)html";

}  // namespace slm::cli

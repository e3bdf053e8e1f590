// A reliable multi-lang spout in Node.js (plain protocol, no library): emits each sentence of a
// fixed list COUNT times (env SENTENCE_COUNT, default 1000) with a message id, replays failed
// ones, and then only answers "sync".
const fs = require('fs');
const path = require('path');

const SENTENCES = [
  'the cow jumped over the moon',
  'an apple a day keeps the doctor away',
  'four score and seven years ago',
  'snow white and the seven dwarfs',
  'i am at two with nature',
];
const total = parseInt(process.env.SENTENCE_COUNT || '1000', 10);
let next = 0;
const pending = new Map();
const replay = [];

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + '\nend\n');
}

let buffer = '';
let lines = [];
let started = false;

function handle(msg) {
  if (!started) {
    started = true;
    fs.writeFileSync(path.join(msg.pidDir, String(process.pid)), '');
    send({ pid: process.pid });
    return;
  }
  if (Array.isArray(msg)) return; // task ids of an emit
  if (msg.command === 'next') {
    let id = replay.length ? replay.shift() : (next < total ? next++ : null);
    if (id !== null) {
      const sentence = SENTENCES[id % SENTENCES.length];
      pending.set(id, sentence);
      send({ command: 'emit', id: id, tuple: [sentence], need_task_ids: false });
    }
  } else if (msg.command === 'ack') {
    pending.delete(msg.id);
  } else if (msg.command === 'fail') {
    if (pending.has(msg.id)) replay.push(msg.id);
  }
  send({ command: 'sync' });
}

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffer += chunk;
  let i;
  while ((i = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, i);
    buffer = buffer.slice(i + 1);
    if (line === 'end') {
      handle(JSON.parse(lines.join('\n')));
      lines = [];
    } else {
      lines.push(line);
    }
  }
});

// SPDX-License-Identifier: MIT
// Encodes every line of lines.txt with gpt-3-encoder (GPT-2's BPE in JavaScript) and writes the
// reference ids to <out>/reference.json. Usage: node reference.js <lines.txt> <out folder>
'use strict';

const fs = require('fs');
const path = require('path');

function fail(message) {
  console.error('reference.js: ' + message);
  process.exit(1);
}

// One JSON string literal per line; blank lines and lines starting with // are skipped.
function readLines(file) {
  const lines = [];
  fs.readFileSync(file, 'utf-8').split('\n').forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.startsWith('//')) return;
    let text;
    try {
      text = JSON.parse(line);
    } catch (e) {
      fail(`${file} line ${index + 1}: not a JSON string (${e.message})`);
    }
    if (typeof text !== 'string') fail(`${file} line ${index + 1}: not a JSON string`);
    lines.push(text);
  });
  return lines;
}

const [linesFile, outDir] = process.argv.slice(2);
if (!linesFile || !outDir) fail('usage: node reference.js <lines.txt> <out folder>');
const packageDir = path.join(outDir, 'node_modules', 'gpt-3-encoder');
const packageJson = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf-8'));
const encoder = require(packageDir);

const cases = readLines(linesFile).map((text, index) => {
  const ids = encoder.encode(text);
  if (!ids.every(Number.isInteger)) fail(`line ${index + 1} (${JSON.stringify(text)}) gave a non-id`);
  return { text, ids };
});
if (cases.length === 0) fail(`${linesFile} has no lines`);

const out = path.join(outDir, 'reference.json');
fs.writeFileSync(out, JSON.stringify({ package: 'gpt-3-encoder', version: packageJson.version, cases }));
console.log(`reference.js: ${cases.length} lines encoded by gpt-3-encoder ${packageJson.version} -> ${out}`);

// Validates FHIR R4 JSON against the core definitions bundled in the npm package `fhir`
// (FHIR.js), offline. Each argument is a file holding one resource (a Bundle) or, with the
// .ndjson extension, one resource per line. Fails on any message of severity error, on a
// reference inside a Bundle to anything but one of its own entries (a record never points at
// another patient's), and on a file with no resource at all.
'use strict';
const fs = require('fs');
const { Fhir } = require('fhir');

const fhir = new Fhir(); // R4
let failures = 0;
let resources = 0;

function references(node, out) {
  if (Array.isArray(node)) node.forEach((n) => references(n, out));
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'reference' && typeof value === 'string') out.push(value);
      else references(value, out);
    }
  }
  return out;
}

function check(resource, where) {
  resources += 1;
  const result = fhir.validate(resource, { errorOnUnexpected: true });
  for (const m of result.messages.filter((m) => m.severity === 'error')) {
    failures += 1;
    console.error(`${where}: ${m.location}: ${m.message}`);
  }
  if (resource.resourceType === 'Bundle') {
    const own = new Set((resource.entry || []).map((e) => e.fullUrl));
    for (const r of references(resource.entry || [], [])) {
      if (!own.has(r)) {
        failures += 1;
        console.error(`${where}: refers outside its entries: ${r}`);
      }
    }
  }
}

for (const file of process.argv.slice(2)) {
  const text = fs.readFileSync(file, 'utf8');
  if (file.endsWith('.ndjson')) {
    text.split('\n').filter((l) => l.trim()).forEach((line, n) => check(JSON.parse(line), `${file}:${n + 1}`));
  } else {
    check(JSON.parse(text), file);
  }
}
if (resources === 0) {
  console.error('nothing to validate');
  process.exit(1);
}
console.log(`${resources} resources validated, ${failures} errors`);
process.exit(failures === 0 ? 0 : 1);

// The build step of the Nx and Turborepo fixtures: writes DIR/out.txt (a short text), DIR/empty
// (0 bytes) and DIR/blob.bin (1 MiB from a fixed xorshift32 sequence, so it does not compress and
// the cache entry is about 1 MiB), appends one line to $FIXTURE_RUN_LOG when that is set (the
// drivers count real executions with it; the clients do not hash it), and prints one line that
// the clients store as the task's terminal output.
//
//   node make-output.js DIR
"use strict";
const fs = require("fs");
const path = require("path");

const blobBytes = 1 << 20;
const dir = process.argv[2];
if (!dir) {
  console.error("usage: node make-output.js DIR");
  process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, "out.txt"), "built by the fixture\n");
fs.writeFileSync(path.join(dir, "empty"), "");
const blob = Buffer.alloc(blobBytes);
let x = 0x9e3779b9;
for (let i = 0; i < blobBytes; i += 4) {
  x ^= x << 13; x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5; x >>>= 0;
  blob.writeUInt32LE(x, i);
}
fs.writeFileSync(path.join(dir, "blob.bin"), blob);
if (process.env.FIXTURE_RUN_LOG) {
  fs.appendFileSync(process.env.FIXTURE_RUN_LOG, "executed\n");
}
console.log("fixture-build-executed");

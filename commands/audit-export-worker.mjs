// A worker thread of an export's verification: finds the leading run of rows in each stretch of lines it is sent
// (the hashing, most of a verification's work), and sends the stretch back with what it found, in the order sent.
import { Buffer } from 'node:buffer';
import { parentPort } from 'node:worker_threads';
import { leadingRows } from './audit-export-rows.mjs';

parentPort.on('message', (bytes) => {
  const run = leadingRows(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  parentPort.postMessage({ bytes, run }, [bytes.buffer]);
});

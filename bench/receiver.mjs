// A webhook receiver for the benchmark: answers 204 to every POST and counts them; GET
// answers the count. Usage: node bench/receiver.mjs PORT
import { createServer } from 'node:http';

let received = 0;
createServer((req, res) => {
  if (req.method === 'POST') {
    req.resume();
    req.on('end', () => {
      received += 1;
      res.statusCode = 204;
      res.end();
    });
  } else {
    res.end(String(received));
  }
}).listen(Number(process.argv[2]), '127.0.0.1');

// A plain aedes MQTT broker on 127.0.0.1:<port>, anonymous access, in memory, for the tests.
// aedes speaks MQTT 3.1 and 3.1.1 only: it answers a v5 CONNECT with CONNACK return code 1
// ("unacceptable protocol version") and closes the connection, as MQTT 3.1.1 [MQTT-3.1.2-2] says.
// Usage: node broker.mjs PORT   (logs to stdout; SIGTERM or SIGINT stops it)
import { createServer } from 'node:net'
import { Aedes } from 'aedes'

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node broker.mjs PORT')
  process.exit(2)
}
const broker = await Aedes.createBroker()
broker.on('client', (client) => console.log(`client connected: ${client.id}`))
broker.on('connectionError', (_client, err) => console.log(`connection refused: ${err.message}`))
const server = createServer(broker.handle)
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`))
// nothing to keep (no persistence): stop at once, the system closes the sockets
const stop = () => broker.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

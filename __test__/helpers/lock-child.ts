// A trainer stand-in for the stolen-lock test: takes the `train` lock of a FileStore with a
// short ttl, says "held", and when told (a line on stdin) writes through a guarded store and
// prints what happened as one JSON line.
import { createInterface } from 'node:readline'
import { FileStore, guardWrites } from '../../src/store/index.js'

const store = new FileStore({ dir: process.argv[2] })
const lock = await store.acquireLock('train', { ttlMs: 400, purpose: 'first trainer' })
process.stdout.write('held\n')
const rl = createInterface({ input: process.stdin })
for await (const _line of rl) {
  try {
    await guardWrites(store, lock).putState('written-by-first', { at: Date.now() })
    process.stdout.write(JSON.stringify({ wrote: true }) + '\n')
  } catch (err) {
    process.stdout.write(JSON.stringify({ wrote: false, name: (err as Error).name, message: (err as Error).message, lost: lock.lost }) + '\n')
  }
  await lock.release()
  break
}
process.exit(0)

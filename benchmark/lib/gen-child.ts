/**
 * Peak RSS of generation alone, in a fresh process (the bench's own process still holds what
 * training allocated): loads a generator, answers a few patterns, prints one JSON line.
 *
 *   node --import @oxc-node/core/register benchmark/lib/gen-child.ts JOB.json
 *   JOB: { baseModel, adapterDir, quantize: 'f32' | 'q8_0', patterns: (number | null)[][] (fields), count, seed }
 */
import { readFileSync } from 'node:fs'

const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { baseModel: string; adapterDir: string; quantize: 'f32' | 'q8_0'; patterns: (number | null)[][]; count: number; seed: number }
const { native } = await import('../../src/native.ts')
const hwm = () => Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024
const before = hwm()
const t = performance.now()
const g = await native().NativeWordGenerator.load(job.baseModel, job.adapterDir, { quantize: job.quantize, offline: true })
const loadS = (performance.now() - t) / 1000
const afterLoad = hwm()
const msPerWord: number[] = []
for (const [i, p] of job.patterns.entries()) msPerWord.push((await g.generate(p, { count: job.count, seed: job.seed + i })).msPerWord)
console.log(JSON.stringify({ quantize: job.quantize, loadS, startRssMb: before, afterLoadPeakRssMb: afterLoad, peakRssMb: hwm(), msPerWord }))

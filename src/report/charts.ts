/**
 * The report's plots: vega-lite specs, compiled to vega and rendered to static SVG in Node
 * (`renderer: 'none'`; no canvas, no browser, no network). Every spec carries its data inline.
 */
import { parse, View } from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

/** Shared look: one font stack, no aria labels per mark (they would bloat scatter plots). */
const CONFIG = {
  font: 'DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif',
  background: 'white',
  aria: false,
  padding: 8,
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#e8e8e8' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' },
  title: { fontSize: 13, fontWeight: 'bold', anchor: 'start' },
  view: { stroke: '#ddd' },
} as const

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json'

/** Compiles a vega-lite spec and renders it to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const vg = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec
  const view = new View(parse(vg), { renderer: 'none', logLevel: 0 })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

export interface TimingRow {
  stage: string
  seconds: number
  status: string
}

export function timingsSpec(rows: TimingRow[]): TopLevelSpec {
  const label = (s: number) => (s >= 120 ? `${(s / 60).toFixed(1)} min` : s >= 10 ? `${s.toFixed(0)} s` : `${s.toFixed(2)} s`)
  return {
    $schema: SCHEMA,
    title: 'Wall time per stage',
    width: 560,
    height: { step: 30 },
    data: { values: rows.map((r) => ({ ...r, label: label(r.seconds) })) },
    encoding: {
      y: { field: 'stage', type: 'nominal', sort: rows.map((r) => r.stage), title: null },
      x: { field: 'seconds', type: 'quantitative', title: 'seconds' },
    },
    layer: [
      {
        mark: { type: 'bar', cornerRadiusEnd: 2 },
        encoding: {
          color: {
            field: 'status',
            type: 'nominal',
            title: 'status',
            scale: { domain: ['completed', 'skipped', 'running', 'failed', 'pending'], range: ['#4c78a8', '#9ecae9', '#f58518', '#e45756', '#bab0ac'] },
          },
        },
      },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 }, encoding: { text: { field: 'label' } } },
    ],
  } as TopLevelSpec
}

export interface LossPoint {
  step: number
  loss: number
  series: 'training' | 'validation'
}

export function lossSpec(points: LossPoint[]): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title: 'DSL training: loss per optimiser step',
    width: 640,
    height: 280,
    data: { values: points },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'loss', type: 'quantitative', title: 'cross-entropy loss', scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: ['training', 'validation'], range: ['#4c78a8', '#e45756'] } },
    },
    layer: [
      { mark: { type: 'line', strokeWidth: 1.5, interpolate: 'linear' } },
      { transform: [{ filter: "datum.series === 'validation'" }], mark: { type: 'point', filled: true, size: 40 } },
    ],
  } as TopLevelSpec
}

export interface CodeCell {
  level: string
  code: number
  count: number
}

export function codebookSpec(cells: CodeCell[], words: number): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title: `Words per code (${words} words; every level sums to ${words})`,
    width: { step: 22 },
    height: { step: 30 },
    data: { values: cells },
    encoding: {
      x: { field: 'code', type: 'ordinal', title: 'code', axis: { labelAngle: 0 } },
      y: { field: 'level', type: 'ordinal', title: null },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          color: {
            field: 'count',
            type: 'quantitative',
            title: 'words',
            scale: { scheme: 'blues', domainMin: 0 },
            legend: { orient: 'right', gradientLength: 100 },
          },
        },
      },
      {
        transform: [{ filter: 'datum.count > 0' }],
        mark: { type: 'text', fontSize: 8 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: `datum.count > ${Math.max(1, Math.max(...cells.map((c) => c.count), 1) * 0.55)}`, value: 'white' }, value: '#333' },
        },
      },
    ],
  } as TopLevelSpec
}

export interface ProjectionPoint {
  x: number
  y: number
  value: string
}

export function projectionSpec(points: ProjectionPoint[], opts: { title: string; legend: string; domain: string[]; range: string[]; xTitle: string; yTitle: string }): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title: opts.title,
    width: 250,
    height: 250,
    data: { values: points },
    mark: { type: 'point', filled: true, size: 14, opacity: 0.65 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.xTitle, scale: { zero: false, nice: true }, axis: { tickCount: 5 } },
      y: { field: 'y', type: 'quantitative', title: opts.yTitle, scale: { zero: false, nice: true }, axis: { tickCount: 5 } },
      color: { field: 'value', type: 'nominal', title: opts.legend, scale: { domain: opts.domain, range: opts.range }, legend: { orient: 'bottom', columns: 2 } },
    },
  } as TopLevelSpec
}

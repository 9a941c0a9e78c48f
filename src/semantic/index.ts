export { SemanticEncoder, labelArrays, preferenceToId, type PreferenceEmbedder, type AttributeLabels, type RvqMode, type SemanticTrainOptions, type RvqMetrics, type RvqInfo } from './encoder.js'
export { parsePattern, formatPattern, patternMatches, toPatternText, type Pattern, type SemanticId } from './pattern.js'

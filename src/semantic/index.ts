export { SemanticEncoder, describePattern, labelArrays, preferenceToId, type PreferenceEmbedder, type AttributeLabels, type RvqMode, type SemanticTrainOptions, type EncodeManyOptions, type RvqMetrics, type RvqInfo } from './encoder.js'
export { AttributePredictor, argmaxLabels, featureRows, type AttributeProbabilities, type PredictorInfo } from './predictor.js'
export { ATTRIBUTE_COUNT, VALUE_COUNT, SIDE_FEATURE_NAMES, SIDE_FEATURES, sideFeatures, sideFeatureRows, meanFacts, type WordFacts } from './features.js'
export { parsePattern, formatPattern, patternMatches, toPattern, toPatternText, type Pattern, type PatternInput, type SemanticId } from './pattern.js'

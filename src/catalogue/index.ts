/** The word catalogue: real English words from npm packages, with meanings, embedded once per embedder. */
export { Catalogue, type CatalogueLoadOptions } from './catalogue.js'
export { buildCatalogue, inflectionBase, type CatalogueEntry, type CatalogueSource } from './build.js'
export { catalogueVectors, quantizeRows, dequantizeRows, PART_ROWS, type CatalogueVectors, type CatalogueVectorOptions } from './vectors.js'
export { locateSources, type CatalogueSources, type SourceInfo } from './sources.js'

//! Trained codebooks: four levels of 32 codewords, and turning IDs back into vectors.

use super::linalg::normalise;
use super::{AttributeVocab, SemanticId, CODES, LEVELS};
use crate::error::{Result, WotdError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeKind {
    Unsupervised,
    Aligned,
}

/// What a codebook was trained on and how; saved as its JSON metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodebookInfo {
    pub mode: ModeKind,
    pub dimension: usize,
    pub embedder_model_id: Option<String>,
    /// Present in aligned mode, where levels 0-2 name attribute values.
    pub vocab: Option<AttributeVocab>,
    pub seed: u64,
    pub max_iterations: usize,
    pub trained_points: usize,
    /// Whether aligned levels were fitted with later attributes removed (`TrainOptions::disentangle`).
    #[serde(default)]
    pub disentangled: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Codebook {
    info: CodebookInfo,
    /// `[LEVELS][CODES][dimension]`, row-major.
    codewords: Vec<f32>,
    /// Bit `j` of `active[l]`: code `j` of level `l` held training points. Encoding never
    /// picks an inactive code; its codeword is zero.
    active: [u32; LEVELS],
}

impl Codebook {
    pub(crate) fn new(info: CodebookInfo, codewords: Vec<f32>, active: [u32; LEVELS]) -> Result<Self> {
        if info.dimension == 0 || codewords.len() != LEVELS * CODES * info.dimension {
            return Err(WotdError::InvalidInput(format!(
                "{} codeword numbers do not make {LEVELS} x {CODES} codewords of dimension {}",
                codewords.len(),
                info.dimension
            )));
        }
        if (info.mode == ModeKind::Aligned) != info.vocab.is_some() {
            return Err(WotdError::InvalidInput("attribute names belong to aligned codebooks, and only to them".into()));
        }
        Ok(Codebook { info, codewords, active })
    }

    pub fn info(&self) -> &CodebookInfo {
        &self.info
    }

    pub fn dimension(&self) -> usize {
        self.info.dimension
    }

    pub fn mode(&self) -> ModeKind {
        self.info.mode
    }

    /// All codewords, `[LEVELS][CODES][dimension]` row-major (the safetensors layout).
    pub fn codewords(&self) -> &[f32] {
        &self.codewords
    }

    pub fn codeword(&self, level: usize, code: usize) -> &[f32] {
        let d = self.info.dimension;
        let start = (level * CODES + code) * d;
        &self.codewords[start..start + d]
    }

    /// The codewords of one level, `[CODES][dimension]`.
    pub(crate) fn level(&self, level: usize) -> &[f32] {
        let d = self.info.dimension;
        &self.codewords[level * CODES * d..(level + 1) * CODES * d]
    }

    pub fn is_active(&self, level: usize, code: usize) -> bool {
        self.active[level] >> code & 1 == 1
    }

    pub(crate) fn active_masks(&self) -> [u32; LEVELS] {
        self.active
    }

    /// The unit vector an ID stands for: the sum of its codewords, renormalised.
    pub fn decode(&self, id: &SemanticId) -> Result<Vec<f32>> {
        self.decode_prefix(id, LEVELS)
    }

    /// `decode` using only the first `levels` levels (1-4), for measuring how much each
    /// level adds.
    pub fn decode_prefix(&self, id: &SemanticId, levels: usize) -> Result<Vec<f32>> {
        let mut v = self.sum_prefix(id, levels)?;
        // A sum with no direction (codewords cancelling exactly) decodes to zeros rather
        // than NaNs; cosine treats it as unrelated to everything.
        normalise(&mut v);
        Ok(v)
    }

    pub(crate) fn sum_prefix(&self, id: &SemanticId, levels: usize) -> Result<Vec<f32>> {
        check_id(id)?;
        if !(1..=LEVELS).contains(&levels) {
            return Err(WotdError::InvalidInput(format!("levels must be 1-{LEVELS}, got {levels}")));
        }
        let mut v = vec![0f32; self.info.dimension];
        for (level, &code) in id.iter().enumerate().take(levels) {
            for (acc, c) in v.iter_mut().zip(self.codeword(level, code as usize)) {
                *acc += c;
            }
        }
        Ok(v)
    }

    /// Decodes many IDs into one flat `ids.len() x dimension` batch.
    pub fn decode_many(&self, ids: &[SemanticId]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ids.len() * self.info.dimension);
        for id in ids {
            out.extend(self.decode(id)?);
        }
        Ok(out)
    }

    /// The ID of the point a fraction `t` (0-1) of the way from `a`'s vector to `b`'s:
    /// decode both, interpolate linearly, renormalise, encode greedily.
    pub fn interpolate(&self, a: &SemanticId, b: &SemanticId, t: f32) -> Result<SemanticId> {
        if !(0.0..=1.0).contains(&t) {
            return Err(WotdError::InvalidInput(format!("interpolation fraction must be in 0-1, got {t}")));
        }
        let (va, vb) = (self.decode(a)?, self.decode(b)?);
        let mut mix: Vec<f32> = va.iter().zip(&vb).map(|(x, y)| (1.0 - t) * x + t * y).collect();
        if !normalise(&mut mix) {
            return Err(WotdError::InvalidInput(format!(
                "{a:?} and {b:?} decode to opposite vectors; their midpoint has no direction"
            )));
        }
        self.encode(&mix)
    }
}

pub(crate) fn check_id(id: &SemanticId) -> Result<()> {
    match id.iter().position(|&c| c as usize >= CODES) {
        Some(l) => Err(WotdError::InvalidInput(format!(
            "ID {id:?}: code {} at level {l} is out of range 0-{}",
            id[l],
            CODES - 1
        ))),
        None => Ok(()),
    }
}

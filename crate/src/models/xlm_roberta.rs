//! XLM-RoBERTa (bge-m3): the BERT encoder with RoBERTa position ids, which start after the
//! padding index, and a one-row token-type table.

use super::bert::{BertConfig, BertModel, PositionIds};
use crate::error::Result;
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// RoBERTa's padding index when a config leaves `pad_token_id` out.
pub const DEFAULT_PADDING_IDX: u32 = 1;

/// Loads an XLM-RoBERTa encoder; the padding index comes from the config's `pad_token_id`.
pub fn load(config: &BertConfig, weights: &HashMap<String, Tensor>, source: &Path) -> Result<BertModel> {
    let padding_idx = config.pad_token_id.unwrap_or(DEFAULT_PADDING_IDX);
    BertModel::load(config, weights, source, PositionIds::AfterPadding { padding_idx })
}

/// Whether a config's `model_type` names this architecture.
pub fn is_model_type(model_type: &str) -> bool {
    matches!(model_type, "xlm-roberta" | "xlm_roberta" | "roberta" | "camembert")
}

//! Tokenizers: tokenizer.json with baked-in padding/truncation cleared, explicit truncation,
//! and the GGUF-embedded vocabulary giving the same ids as the HF tokenizer.json.

mod io_support;

use io_support::{fixture, Scratch};
use wotd_native::io::{GgufFile, ModelFiles, TextTokenizer};

const SAMPLES: &[&str] = &[
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "<|im_start|>user\nWhat is 12345 + 678?<|im_end|>\n<|im_start|>assistant\n",
    "  leading spaces,\ttabs\tand\n\nnewlines  ",
    "café naïve — “quotes” 😀 日本語",
    "digits 0 1 22 333 4444 and mixed a1b2c3",
    "<|endoftext|>",
    "",
];

fn hf_llama() -> TextTokenizer {
    TextTokenizer::from_dir(&fixture("llama")).unwrap()
}

fn gguf_llama() -> TextTokenizer {
    TextTokenizer::from_gguf(&GgufFile::open(&fixture("llama").join("model-f32.gguf")).unwrap()).unwrap()
}

#[test]
fn gguf_tokenizer_gives_the_hf_ids() {
    let (hf, gg) = (hf_llama(), gguf_llama());
    assert_eq!(hf.vocab_size(), gg.vocab_size());
    for text in SAMPLES {
        for special in [false, true] {
            let a = hf.encode(text, special).unwrap();
            let b = gg.encode(text, special).unwrap();
            assert_eq!(a.ids, b.ids, "{text:?} (add_special_tokens={special})");
        }
    }
    // Control tokens are single special ids, not spelled out as bytes.
    let ids = gg.encode("<|im_start|>user<|im_end|>", false).unwrap().ids;
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
}

#[test]
fn both_tokenizers_round_trip_text() {
    for tok in [hf_llama(), gguf_llama()] {
        for text in SAMPLES {
            let ids = tok.encode(text, false).unwrap().ids;
            assert_eq!(tok.decode(&ids, false).unwrap(), *text);
        }
        // Skipping specials drops exactly the control tokens.
        let ids = tok.encode("<|im_start|>hi there<|im_end|>", false).unwrap().ids;
        assert_eq!(tok.decode(&ids, true).unwrap(), "hi there");
    }
}

#[test]
fn gguf_tokenizer_carries_specials_and_chat_template() {
    let (hf, gg) = (hf_llama(), gguf_llama());
    assert_eq!(gg.specials().bos, Some(1));
    assert_eq!(gg.specials().eos, Some(2));
    assert_eq!(gg.specials().pad, Some(2));
    assert_eq!(gg.specials().unk, Some(0));
    assert_eq!(hf.specials(), gg.specials());
    assert!(gg.chat_template().unwrap().contains("<|im_start|>"));
    assert_eq!(hf.chat_template(), gg.chat_template());
}

/// A copy of the BERT fixture's tokenizer.json with all-MiniLM's baked-in settings.
fn bert_with_fixed_padding(dir: &Scratch) -> std::path::PathBuf {
    let src = std::fs::read_to_string(fixture("bert").join("tokenizer.json")).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&src).unwrap();
    j["truncation"] = serde_json::json!({"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0});
    j["padding"] = serde_json::json!({
        "strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null,
        "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, j.to_string()).unwrap();
    path
}

#[test]
fn baked_in_padding_and_truncation_are_cleared() {
    let dir = Scratch::new("tok-bert");
    let path = bert_with_fixed_padding(&dir);
    let long = "the cat sat on the mat and the dog sat on the log while the bird sang";
    let tok = TextTokenizer::from_file(&path).unwrap();
    assert_eq!(tok.max_length(), None);
    let short = tok.encode("the cat", true).unwrap();
    assert!(short.ids.len() < 8 && !short.ids.contains(&0), "no padding: {:?}", short.ids);
    let full = tok.encode(long, true).unwrap();
    assert!(full.ids.len() > 16 && !full.truncated, "no truncation: {}", full.ids.len());

    let tok = tok.with_max_length(10).unwrap();
    let cut = tok.encode(long, true).unwrap();
    assert_eq!(cut.ids.len(), 10);
    assert!(cut.truncated);
    // The limit counts special tokens, and the text is cut before [SEP], not after.
    assert_eq!(cut.ids[..9], full.ids[..9]);
    assert_eq!(cut.ids[9], *full.ids.last().unwrap());
    let fits = tok.encode("the cat", true).unwrap();
    assert!(!fits.truncated);
    assert_eq!(fits.ids, short.ids);
}

#[test]
fn corrupt_tokenizer_json_is_reported() {
    let dir = Scratch::new("tok-bad");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, "{\"model\": {\"type\": \"Nonsense\"}}").unwrap();
    let e = TextTokenizer::from_file(&path).unwrap_err();
    assert_eq!(e.code(), "CORRUPT_FILE", "{e}");
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}

#[test]
fn model_files_apply_the_model_limit() {
    let m = ModelFiles::open(&fixture("bert")).unwrap();
    let limit = m.max_length.expect("bert fixture has a limit");
    let tok = m.load_tokenizer().unwrap();
    assert_eq!(tok.max_length(), Some(limit));
    let long = "word ".repeat(limit * 2);
    let e = tok.encode(&long, true).unwrap();
    assert_eq!(e.ids.len(), limit);
    assert!(e.truncated);
}

/// Manual check against the real SmolLM2 GGUF (not in the repository): set WOTD_SMOLLM2_GGUF to
/// its path and run with `--ignored`. The ids are those in scripts/models/README.md.
#[test]
#[ignore]
fn smollm2_gguf_tokenizer_matches_reference_ids() {
    let Ok(path) = std::env::var("WOTD_SMOLLM2_GGUF") else {
        eprintln!("WOTD_SMOLLM2_GGUF not set; skipped");
        return;
    };
    let tok = TextTokenizer::from_gguf(&GgufFile::open(std::path::Path::new(&path)).unwrap()).unwrap();
    let prompt = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
                  <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let want: Vec<u32> = vec![
        1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2, 198,
        1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198,
    ];
    assert_eq!(tok.encode(prompt, false).unwrap().ids, want);
    assert_eq!(
        tok.decode(&[504, 3575, 282, 4649, 314, 7042, 30, 2], false).unwrap(),
        "The capital of France is Paris.<|im_end|>"
    );
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!((tok.specials().bos, tok.specials().eos), (Some(1), Some(2)));
}

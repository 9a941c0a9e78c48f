//! Behaviour of the whole quantizer: training, encoding, decoding, metrics, files.

use super::codebook::{CodebookInfo, ModeKind};
use super::rng::Rng;
use super::*;
use crate::error::WotdError;
use std::sync::atomic::{AtomicBool, Ordering};

fn gaussian(rng: &mut Rng) -> f32 {
    let (u, v) = (rng.next_f64().max(1e-12), rng.next_f64());
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).flat_map(|_| unit((0..dim).map(|_| gaussian(&mut rng)).collect())).collect()
}

/// `clusters` random centres with `per` points each, spread `noise` around them.
fn clustered(clusters: usize, per: usize, dim: usize, noise: f32, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let centres = random_unit_vectors(clusters, dim, seed);
    let mut rng = Rng::new(seed + 1);
    let mut data = Vec::new();
    let mut truth = Vec::new();
    for c in 0..clusters {
        for _ in 0..per {
            data.extend(unit(centres[c * dim..(c + 1) * dim].iter().map(|x| x + noise * gaussian(&mut rng)).collect()));
            truth.push(c);
        }
    }
    (data, truth)
}

/// Vectors built from three attribute directions of falling weight plus noise, with the
/// labels that generated them: what aligned mode is for.
fn attributed(n: usize, dim: usize, seed: u64) -> (Vec<f32>, [Vec<u8>; 3]) {
    let dirs = random_unit_vectors(12, dim, seed);
    let dir = |a: usize, v: u8| &dirs[(a * 4 + v as usize) * dim..(a * 4 + v as usize + 1) * dim];
    let mut rng = Rng::new(seed + 7);
    let mut labels: [Vec<u8>; 3] = Default::default();
    let mut data = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let vals = [rng.below(4) as u8, rng.below(4) as u8, rng.below(4) as u8];
        let v: Vec<f32> = (0..dim)
            .map(|k| dir(0, vals[0])[k] + 0.6 * dir(1, vals[1])[k] + 0.35 * dir(2, vals[2])[k] + 0.04 * gaussian(&mut rng))
            .collect();
        data.extend(unit(v));
        for a in 0..3 {
            labels[a].push(vals[a]);
        }
    }
    (data, labels)
}

fn opts(seed: u64) -> TrainOptions {
    TrainOptions { seed, embedder_model_id: Some("test/embedder".into()), ..TrainOptions::default() }
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wotd-rvq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Level `l` code `j` is 0.5 on coordinate `32 l + j`: any four codes sum to a unit vector,
/// and the nearest code at each level is unambiguous.
fn hand_made() -> Codebook {
    let dim = LEVELS * CODES;
    let mut words = vec![0f32; LEVELS * CODES * dim];
    for l in 0..LEVELS {
        for j in 0..CODES {
            words[(l * CODES + j) * dim + l * CODES + j] = 0.5;
        }
    }
    let info = CodebookInfo {
        mode: ModeKind::Unsupervised,
        dimension: dim,
        embedder_model_id: None,
        vocab: None,
        seed: 0,
        max_iterations: 1,
        trained_points: 0,
        disentangled: false,
    };
    Codebook::new(info, words, [u32::MAX; LEVELS]).unwrap()
}

fn hand_made_vector(id: SemanticId) -> Vec<f32> {
    let mut v = vec![0f32; LEVELS * CODES];
    for (l, &c) in id.iter().enumerate() {
        v[l * CODES + c as usize] = 0.5;
    }
    v
}

#[test]
fn hand_made_codebook_gives_exact_codes_and_exact_decodes() {
    let book = hand_made();
    for id in [[3, 7, 0, 31], [0, 0, 0, 0], [31, 30, 29, 28], [12, 5, 9, 17]] {
        let x = hand_made_vector(id);
        assert_eq!(book.encode(&x).unwrap(), id);
        assert_eq!(book.encode_beam(&x, 4).unwrap(), id);
        assert_eq!(book.decode(&id).unwrap(), x, "decode must be the codeword sum, exactly");
    }
    let ids = [[1, 2, 3, 4], [5, 6, 7, 8]];
    let batch: Vec<f32> = ids.iter().flat_map(|&id| hand_made_vector(id)).collect();
    assert_eq!(book.encode_many(&batch, &EncodeOptions::default()).unwrap(), ids);
    assert_eq!(book.decode_many(&ids).unwrap(), batch);
    // One level decodes to its single codeword, renormalised.
    let first = book.decode_prefix(&[9, 0, 0, 0], 1).unwrap();
    assert_eq!(first[9], 1.0);
    assert_eq!(first.iter().filter(|&&x| x != 0.0).count(), 1);
}

#[test]
fn interpolation_walks_from_one_id_to_the_other() {
    let book = hand_made();
    let (a, b) = ([1, 2, 3, 4], [5, 6, 7, 8]);
    assert_eq!(book.interpolate(&a, &b, 0.0).unwrap(), a);
    assert_eq!(book.interpolate(&a, &b, 1.0).unwrap(), b);
    assert_eq!(book.interpolate(&a, &b, 0.3).unwrap(), a);
    assert_eq!(book.interpolate(&a, &b, 0.7).unwrap(), b);
    assert!(matches!(book.interpolate(&a, &b, 1.5), Err(WotdError::InvalidInput(_))));
    assert!(matches!(book.decode(&[32, 0, 0, 0]), Err(WotdError::InvalidInput(_))));
}

#[test]
fn same_seed_gives_byte_identical_codebooks() {
    let data = random_unit_vectors(300, 48, 11);
    let a = train(&data, 48, &opts(5)).unwrap();
    let b = train(&data, 48, &opts(5)).unwrap();
    let bits = |c: &Codebook| c.codewords().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    let c = train(&data, 48, &opts(6)).unwrap();
    assert_ne!(bits(&a), bits(&c), "the seed must matter");

    let (da, db) = (scratch_dir("det-a"), scratch_dir("det-b"));
    a.save(&da).unwrap();
    b.save(&db).unwrap();
    for f in [CODEBOOK_FILE, METADATA_FILE] {
        assert_eq!(std::fs::read(da.join(f)).unwrap(), std::fs::read(db.join(f)).unwrap(), "{f}");
    }
    let _ = (std::fs::remove_dir_all(da), std::fs::remove_dir_all(db));
}

#[test]
fn every_added_level_improves_or_keeps_reconstruction() {
    let data = random_unit_vectors(600, 64, 21);
    let book = train(&data, 64, &opts(1)).unwrap();
    let held_out = random_unit_vectors(200, 64, 22);
    for (what, vectors) in [("training", &data), ("held-out", &held_out)] {
        let m = book.evaluate(vectors, None).unwrap();
        for l in 1..LEVELS {
            let (prev, next) = (m.reconstruction[l - 1], m.reconstruction[l]);
            assert!(next.mean >= prev.mean, "{what}: level {} mean {} < {}", l + 1, next.mean, prev.mean);
        }
        assert!(m.reconstruction[3].mean > m.reconstruction[0].mean + 0.05, "{what}: {:?}", m.reconstruction);
    }
}

#[test]
fn well_separated_clusters_use_every_level0_code() {
    let (data, truth) = clustered(32, 12, 64, 0.05, 3);
    let book = train(&data, 64, &opts(2)).unwrap();
    let m = book.evaluate(&data, None).unwrap();
    assert_eq!(m.utilisation[0], 1.0);
    assert!((m.perplexity[0] - 1.0).abs() < 1e-5, "equal clusters, equal use: {}", m.perplexity[0]);
    assert_eq!(m.locality, 1.0);
    // Every cluster lands on its own code.
    let ids = book.encode_many(&data, &EncodeOptions::default()).unwrap();
    let mut code_of = [None; 32];
    for (id, &c) in ids.iter().zip(&truth) {
        assert_eq!(*code_of[c].get_or_insert(id[0]), id[0], "cluster {c} split");
    }
}

#[test]
fn aligned_codes_carry_the_labels() {
    let (data, labels) = attributed(800, 64, 8);
    let options = TrainOptions { mode: Mode::Aligned { labels: labels.clone() }, ..opts(4) };
    let book = train(&data, 64, &options).unwrap();
    assert_eq!(book.mode(), ModeKind::Aligned);

    let known = book.encode_many(&data, &EncodeOptions { beam: 1, labels: Some(&labels) }).unwrap();
    for (i, id) in known.iter().enumerate() {
        for a in 0..ATTRIBUTES {
            assert_eq!(id[a] >> 3, labels[a][i], "vector {i} level {a}: {id:?}");
        }
    }
    let beamed = book.encode_many(&data, &EncodeOptions { beam: 4, labels: Some(&labels) }).unwrap();
    assert!(beamed.iter().enumerate().all(|(i, id)| (0..3).all(|a| id[a] >> 3 == labels[a][i])));

    // Without labels the nearest code predicts them; this data makes that easy.
    let m = book.evaluate(&data, Some(&labels)).unwrap();
    let acc = m.label_accuracy.unwrap();
    assert!(acc.iter().all(|&a| a > 0.95), "{acc:?}");
    let nmi = m.nmi.unwrap();
    assert!(nmi[0][0] > nmi[0][1] && nmi[0][0] > nmi[0][2], "level 0 is about style: {nmi:?}");
    assert!(m.utilisation[3] > 0.5, "level 3 is free: {:?}", m.utilisation);
}

#[test]
fn disentangling_makes_alignment_generalise_to_held_out_words() {
    let (data, labels) = attributed(1000, 64, 13);
    let (train_n, dim) = (800, 64);
    let part = |l: &[Vec<u8>; 3], r: std::ops::Range<usize>| -> [Vec<u8>; 3] { std::array::from_fn(|a| l[a][r.clone()].to_vec()) };
    let held_out = part(&labels, train_n..1000);
    let accuracy = |disentangle: bool| {
        let options = TrainOptions { mode: Mode::Aligned { labels: part(&labels, 0..train_n) }, disentangle, ..opts(4) };
        let book = train(&data[..train_n * dim], dim, &options).unwrap();
        assert_eq!(book.info().disentangled, disentangle);
        book.evaluate(&data[train_n * dim..], Some(&held_out)).unwrap().label_accuracy.unwrap()
    };
    let (plain, clean) = (accuracy(false), accuracy(true));
    assert!(clean.iter().all(|&a| a > 0.95), "disentangled: {clean:?}");
    // Entangled level-0 nuance codes soak up complexity and era; measured 1.0 / 0.56 / 0.30
    // on similar data.
    assert!(clean[1] > plain[1] + 0.2 && clean[2] > plain[2] + 0.2, "plain {plain:?} vs disentangled {clean:?}");
}

#[test]
fn unsupervised_codes_ignore_labels_and_refuse_them_on_encode() {
    let (data, labels) = attributed(200, 32, 9);
    let book = train(&data, 32, &opts(1)).unwrap();
    let e = book.encode_many(&data, &EncodeOptions { beam: 1, labels: Some(&labels) }).unwrap_err();
    assert!(e.to_string().contains("only apply to aligned"), "{e}");
    assert!(book.evaluate(&data, Some(&labels)).unwrap().label_accuracy.is_some());
}

#[test]
fn bad_labels_are_rejected_with_the_reason() {
    let data = random_unit_vectors(10, 8, 1);
    let short = TrainOptions { mode: Mode::Aligned { labels: [vec![0; 10], vec![0; 9], vec![0; 10]] }, ..opts(0) };
    let e = train(&data, 8, &short).unwrap_err().to_string();
    assert!(e.contains("9 complexity labels for 10 vectors"), "{e}");
    let big = TrainOptions { mode: Mode::Aligned { labels: [vec![0; 10], vec![0; 10], vec![4; 10]] }, ..opts(0) };
    let e = train(&data, 8, &big).unwrap_err().to_string();
    assert!(e.contains("era label of vector 0 is 4"), "{e}");
}

#[test]
fn beam_search_never_reconstructs_worse_than_greedy() {
    let data = random_unit_vectors(500, 48, 31);
    let book = train(&data, 48, &opts(3)).unwrap();
    let probe = random_unit_vectors(300, 48, 32);
    let greedy = book.encode_many(&probe, &EncodeOptions::default()).unwrap();
    let beam = book.encode_many(&probe, &EncodeOptions { beam: 8, labels: None }).unwrap();
    let cos = |x: &[f32], id: &SemanticId| -> f32 {
        let d = book.decode(id).unwrap();
        x.iter().zip(&d).map(|(a, b)| a * b).sum()
    };
    let mut better = 0;
    for (i, (g, b)) in greedy.iter().zip(&beam).enumerate() {
        let x = &probe[i * 48..(i + 1) * 48];
        assert!(cos(x, b) >= cos(x, g) - 1e-6, "vector {i}: beam {b:?} worse than greedy {g:?}");
        better += (cos(x, b) > cos(x, g) + 1e-6) as usize;
    }
    assert!(better > 0, "a beam of 8 should beat greedy somewhere on random data");
}

#[test]
fn too_few_points_leave_codes_inactive_and_unused() {
    let data = random_unit_vectors(10, 16, 4);
    let book = train(&data, 16, &opts(0)).unwrap();
    assert_eq!((0..CODES).filter(|&j| book.is_active(0, j)).count(), 10);
    let probe = random_unit_vectors(200, 16, 5);
    for id in book.encode_many(&probe, &EncodeOptions { beam: 3, labels: None }).unwrap() {
        for (l, &c) in id.iter().enumerate() {
            assert!(book.is_active(l, c as usize), "{id:?} uses inactive code at level {l}");
        }
    }
}

#[test]
fn a_value_no_training_word_had_cannot_be_asked_for() {
    let data = random_unit_vectors(40, 16, 7);
    // No word is romantic (style 2).
    let styles: Vec<u8> = (0..40).map(|i| [0, 1, 3][i % 3]).collect();
    let labels = [styles, vec![0; 40], vec![1; 40]];
    let book = train(&data, 16, &TrainOptions { mode: Mode::Aligned { labels }, ..opts(0) }).unwrap();
    assert!((16..24).all(|j| !book.is_active(0, j)));
    let ask = [vec![2u8], vec![0], vec![1]];
    let e = book.encode_many(&data[..16], &EncodeOptions { beam: 1, labels: Some(&ask) }).unwrap_err();
    assert_eq!(e.to_string(), "invalid input: level 0 has no trained codes for style = romantic: no training vector had it");
    // Unlabelled encoding simply never picks those codes.
    let ids = book.encode_many(&random_unit_vectors(100, 16, 8), &EncodeOptions::default()).unwrap();
    assert!(ids.iter().all(|id| id[0] >> 3 != 2));
}

#[test]
fn a_single_vector_trains_and_round_trips() {
    let data = random_unit_vectors(1, 8, 2);
    let book = train(&data, 8, &opts(0)).unwrap();
    let id = book.encode(&data).unwrap();
    let back = book.decode(&id).unwrap();
    let cos: f32 = back.iter().zip(&data).map(|(a, b)| a * b).sum();
    assert!(cos > 0.9999, "{cos}");
}

#[test]
fn progress_reports_every_level_and_can_cancel() {
    let data = random_unit_vectors(100, 16, 6);
    let mut seen = Vec::new();
    let never = AtomicBool::new(false);
    train_with_progress(&data, 16, &opts(0), &mut |p| {
        seen.push(*p);
        Ok(())
    }, &never)
    .unwrap();
    for level in 0..LEVELS {
        assert!(seen.iter().any(|p| p.level == level && p.iteration == 0));
    }
    let e = train_with_progress(&data, 16, &opts(0), &mut |p| if p.level == 1 { Err(WotdError::Cancelled) } else { Ok(()) }, &never);
    assert!(matches!(e, Err(WotdError::Cancelled)));
}

#[test]
fn a_set_cancel_flag_stops_training_before_any_work() {
    let data = random_unit_vectors(100, 16, 6);
    let mut reports = 0;
    let e = train_with_progress(&data, 16, &opts(0), &mut |_| {
        reports += 1;
        Ok(())
    }, &AtomicBool::new(true));
    assert!(matches!(e, Err(WotdError::Cancelled)), "{e:?}");
    assert_eq!(reports, 0);
}

#[test]
fn a_flag_set_mid_training_stops_it_at_the_next_iteration() {
    let data = random_unit_vectors(100, 16, 6);
    let cancel = AtomicBool::new(false);
    let mut seen = Vec::new();
    let e = train_with_progress(&data, 16, &opts(0), &mut |p| {
        seen.push(*p);
        cancel.store(p.level == 1 && p.iteration == 1, Ordering::SeqCst);
        Ok(())
    }, &cancel);
    assert!(matches!(e, Err(WotdError::Cancelled)), "{e:?}");
    let last = seen.last().unwrap();
    assert_eq!((last.level, last.iteration), (1, 1), "nothing runs after the flag is seen");
}

#[test]
fn attribute_lists_of_the_wrong_length_are_refused_by_count() {
    let names: Vec<String> = AttributeVocab::default().names.to_vec();
    let values: Vec<Vec<String>> = AttributeVocab::default().values.to_vec();
    assert_eq!(AttributeVocab::from_lists(&names, &values).unwrap(), AttributeVocab::default());
    let e = AttributeVocab::from_lists(&names[..2], &values).unwrap_err();
    assert_eq!(e.to_string(), "invalid input: 3 attribute names needed, got 2");
    let e = AttributeVocab::from_lists(&names, &values[..1]).unwrap_err();
    assert_eq!(e.to_string(), "invalid input: 3 attribute value lists needed, got 1");
}

#[test]
fn save_and_load_round_trip_and_refuse_the_wrong_embedder() {
    let (data, labels) = attributed(200, 24, 12);
    let options = TrainOptions { mode: Mode::Aligned { labels }, ..opts(9) };
    let book = train(&data, 24, &options).unwrap();
    let dir = scratch_dir("roundtrip");
    book.save(&dir).unwrap();

    let back = Codebook::load(&dir, &Expectation::default()).unwrap();
    assert_eq!(back, book);
    let exact = Expectation { dimension: Some(24), embedder_model_id: Some("test/embedder".into()) };
    assert_eq!(Codebook::load(&dir, &exact).unwrap().info().vocab, Some(AttributeVocab::default()));

    let e = Codebook::load(&dir, &Expectation { dimension: Some(1024), ..Default::default() }).unwrap_err();
    assert_eq!(e.code(), "INVALID_INPUT");
    let msg = e.to_string();
    assert!(msg.contains("24-d") && msg.contains("1024-d") && msg.contains("\"test/embedder\""), "{msg}");

    let other = Expectation { embedder_model_id: Some("BAAI/bge-m3".into()), ..Default::default() };
    let msg = Codebook::load(&dir, &other).unwrap_err().to_string();
    assert!(msg.contains("\"test/embedder\"") && msg.contains("\"BAAI/bge-m3\""), "{msg}");

    // A tensor file that is not the one the metadata was written with.
    let mut bytes = std::fs::read(dir.join(CODEBOOK_FILE)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(dir.join(CODEBOOK_FILE), bytes).unwrap();
    assert_eq!(Codebook::load(&dir, &Expectation::default()).unwrap_err().code(), "CORRUPT_FILE");

    let missing = Codebook::load(&dir.join("nope"), &Expectation::default()).unwrap_err();
    assert_eq!(missing.code(), "IO");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn inputs_of_the_wrong_shape_are_refused() {
    let book = hand_made();
    assert!(book.encode(&[1.0; 5]).unwrap_err().to_string().contains("5 dimensions; the codebooks expect 128"));
    assert!(matches!(book.encode_many(&[1.0; 128], &EncodeOptions { beam: 0, labels: None }), Err(WotdError::InvalidInput(_))));
    assert!(matches!(train(&[], 4, &opts(0)), Err(WotdError::InvalidInput(_))));
    assert!(matches!(book.evaluate(&[1.0; 128], None), Err(WotdError::InvalidInput(_))));
}

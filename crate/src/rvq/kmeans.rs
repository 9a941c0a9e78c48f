//! k-means for one RVQ level: k-means++ seeding, Lloyd iterations, dead-code re-seeding.
//!
//! Points are split into groups, each owning a range of codes; a point is only ever assigned
//! to a code of its own group. Unsupervised training uses one group with every code; aligned
//! training makes each attribute value a group with its eight codes, which is what keeps
//! `code >> 3` equal to the label.

use super::linalg::{dot, gram, row_norms_sq, tensor};
use super::rng::Rng;
use crate::error::Result;
use std::ops::Range;

pub(crate) struct Group {
    pub members: Vec<usize>,
    pub codes: Range<usize>,
}

pub(crate) struct Fit {
    /// `k x dim`, zero for inactive codes.
    pub centroids: Vec<f32>,
    /// Codes that hold at least one point; encoding never picks the others.
    pub active: Vec<bool>,
    pub assign: Vec<usize>,
    /// Lloyd iterations run; training reports them through progress, tests read them here.
    #[cfg_attr(not(test), allow(dead_code))]
    pub iterations: usize,
}

pub(crate) struct Params {
    pub k: usize,
    pub max_iterations: usize,
    pub seed: u64,
}

/// Squared distances this small are rounding noise: a point that sits on its centroid must
/// not be taken for the worst fit, or a dead code would be re-seeded onto a duplicate.
const ON_CENTROID: f32 = 1e-10;

pub(crate) fn fit(
    points: &[f32],
    dim: usize,
    groups: &[Group],
    params: &Params,
    on_iteration: &mut dyn FnMut(usize, f64) -> Result<()>,
) -> Result<Fit> {
    let n = points.len() / dim;
    let k = params.k;
    let norms = row_norms_sq(points, dim);
    let mut group_of = vec![0usize; n];
    for (g, group) in groups.iter().enumerate() {
        for &i in &group.members {
            group_of[i] = g;
        }
    }

    let mut centroids = vec![0f32; k * dim];
    let mut live = vec![false; k];
    for (g, group) in groups.iter().enumerate() {
        let mut rng = Rng::derive(params.seed, g as u64);
        seed_plus_plus(points, dim, &norms, group, &mut rng, &mut centroids, &mut live);
    }

    let pts = tensor(points, dim)?;
    let assign_step = |centroids: &[f32], live: &[bool]| -> Result<(Vec<usize>, Vec<f32>)> {
        let g = gram(&pts, &tensor(centroids, dim)?)?;
        let cn = row_norms_sq(centroids, dim);
        let mut assign = vec![0usize; n];
        let mut dist = vec![0f32; n];
        for i in 0..n {
            let row = &g[i * k..(i + 1) * k];
            let mut best = (f32::INFINITY, usize::MAX);
            for j in groups[group_of[i]].codes.clone().filter(|&j| live[j]) {
                let d = norms[i] + cn[j] - 2.0 * row[j];
                if d < best.0 {
                    best = (d, j);
                }
            }
            assign[i] = best.1;
            dist[i] = best.0.max(0.0);
        }
        Ok((assign, dist))
    };

    let (mut assign, dist) = assign_step(&centroids, &live)?;
    on_iteration(0, dist.iter().map(|&d| d as f64).sum())?;
    let mut iterations = 0;
    for it in 1..=params.max_iterations {
        iterations = it;
        let reseeded = update(points, dim, groups, &assign, &mut centroids, &mut live);
        let (next, dist) = assign_step(&centroids, &live)?;
        let changed = next.iter().zip(&assign).filter(|(a, b)| a != b).count();
        assign = next;
        on_iteration(it, dist.iter().map(|&d| d as f64).sum())?;
        if changed == 0 && !reseeded {
            break;
        }
    }

    let mut active = vec![false; k];
    for &a in &assign {
        active[a] = true;
    }
    for j in (0..k).filter(|&j| !active[j]) {
        centroids[j * dim..(j + 1) * dim].fill(0.0);
    }
    Ok(Fit { centroids, active, assign, iterations })
}

/// Greedy k-means++ (the variant scikit-learn uses): each new centre is the best of a few
/// D²-weighted draws, which avoids most of the poor seeds a single draw makes.
fn seed_plus_plus(
    points: &[f32],
    dim: usize,
    norms: &[f32],
    group: &Group,
    rng: &mut Rng,
    centroids: &mut [f32],
    live: &mut [bool],
) {
    let members = &group.members;
    if members.is_empty() {
        return;
    }
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    let sq_dist = |i: usize, c: usize| (norms[i] + norms[c] - 2.0 * dot(row(i), row(c))).max(0.0);
    let trials = 2 + (group.codes.len() as f64).ln() as usize;

    let first = members[rng.below(members.len())];
    let mut chosen = vec![first];
    let mut d2: Vec<f32> = members.iter().map(|&i| sq_dist(i, first)).collect();
    while chosen.len() < group.codes.len() {
        let total: f64 = d2.iter().map(|&d| d as f64).sum();
        if total <= 0.0 {
            // Every point already sits on a centre: fewer distinct points than codes.
            break;
        }
        let mut best: Option<(f64, usize, Vec<f32>)> = None;
        for _ in 0..trials {
            let cand = draw(&d2, total, rng);
            let c = members[cand];
            let next: Vec<f32> = members.iter().zip(&d2).map(|(&i, &d)| d.min(sq_dist(i, c))).collect();
            let potential: f64 = next.iter().map(|&d| d as f64).sum();
            if best.as_ref().is_none_or(|b| potential < b.0) {
                best = Some((potential, c, next));
            }
        }
        let (_, c, next) = best.expect("at least one trial");
        chosen.push(c);
        d2 = next;
    }
    for (code, &i) in group.codes.clone().zip(&chosen) {
        centroids[code * dim..(code + 1) * dim].copy_from_slice(row(i));
        live[code] = true;
    }
}

/// Index drawn with probability proportional to `weights`.
fn draw(weights: &[f32], total: f64, rng: &mut Rng) -> usize {
    let target = rng.next_f64() * total;
    let mut acc = 0.0;
    for (i, &w) in weights.iter().enumerate() {
        acc += w as f64;
        if acc > target {
            return i;
        }
    }
    // Rounding can leave `target` a hair above the running sum: take the last positive weight.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

/// Moves every code to the mean of its points and re-seeds codes left without points on
/// the worst-fitting points of their group. Returns whether anything was re-seeded.
fn update(
    points: &[f32],
    dim: usize,
    groups: &[Group],
    assign: &[usize],
    centroids: &mut [f32],
    live: &mut [bool],
) -> bool {
    let k = live.len();
    let mut sums = vec![0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (i, &a) in assign.iter().enumerate() {
        counts[a] += 1;
        let s = &mut sums[a * dim..(a + 1) * dim];
        for (acc, &x) in s.iter_mut().zip(&points[i * dim..(i + 1) * dim]) {
            *acc += x as f64;
        }
    }
    for j in (0..k).filter(|&j| counts[j] > 0) {
        let inv = 1.0 / counts[j] as f64;
        for (c, &s) in centroids[j * dim..(j + 1) * dim].iter_mut().zip(&sums[j * dim..(j + 1) * dim]) {
            *c = (s * inv) as f32;
        }
    }

    let mut reseeded = false;
    for group in groups {
        let dead: Vec<usize> = group.codes.clone().filter(|&j| counts[j] == 0).collect();
        if dead.is_empty() || group.members.is_empty() {
            continue;
        }
        // Exact distances to the updated centres: the gram-based ones carry cancellation
        // error, which would make points that sit on their centre look like misfits.
        let mut misfits: Vec<(f32, usize)> = group
            .members
            .iter()
            .map(|&i| {
                let c = &centroids[assign[i] * dim..(assign[i] + 1) * dim];
                let d: f32 = points[i * dim..(i + 1) * dim].iter().zip(c).map(|(x, y)| (x - y) * (x - y)).sum();
                (d, i)
            })
            .filter(|&(d, _)| d > ON_CENTROID)
            .collect();
        misfits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (&j, &(_, i)) in dead.iter().zip(&misfits) {
            centroids[j * dim..(j + 1) * dim].copy_from_slice(&points[i * dim..(i + 1) * dim]);
            live[j] = true;
            reseeded = true;
        }
    }
    reseeded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_group(n: usize, k: usize) -> Vec<Group> {
        vec![Group { members: (0..n).collect(), codes: 0..k }]
    }

    #[test]
    fn finds_obvious_clusters() {
        // Two tight pairs far apart.
        let pts = [0.0, 1.0, 0.0, 1.1, 5.0, 0.0, 5.1, 0.0];
        let fit = fit(&pts, 2, &one_group(4, 2), &Params { k: 2, max_iterations: 20, seed: 3 }, &mut |_, _| Ok(())).unwrap();
        assert_eq!(fit.assign[0], fit.assign[1]);
        assert_eq!(fit.assign[2], fit.assign[3]);
        assert_ne!(fit.assign[0], fit.assign[2]);
        let c = fit.assign[2];
        assert!((fit.centroids[c * 2] - 5.05).abs() < 1e-5);
    }

    #[test]
    fn fewer_distinct_points_than_codes_leaves_the_rest_inactive() {
        let pts = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let fit = fit(&pts, 2, &one_group(3, 4), &Params { k: 4, max_iterations: 10, seed: 1 }, &mut |_, _| Ok(())).unwrap();
        assert_eq!(fit.active.iter().filter(|&&a| a).count(), 2);
        assert!(fit.iterations < 10, "must converge, not churn re-seeding duplicates");
    }

    #[test]
    fn groups_keep_their_points_on_their_codes() {
        let pts: Vec<f32> = (0..20).flat_map(|i| [i as f32, (i * 7 % 5) as f32]).collect();
        let groups = vec![
            Group { members: (0..20).filter(|i| i % 2 == 0).collect(), codes: 0..3 },
            Group { members: (0..20).filter(|i| i % 2 == 1).collect(), codes: 3..6 },
        ];
        let fit = fit(&pts, 2, &groups, &Params { k: 6, max_iterations: 30, seed: 9 }, &mut |_, _| Ok(())).unwrap();
        for (i, &a) in fit.assign.iter().enumerate() {
            assert_eq!(a / 3, i % 2, "point {i} left its group");
        }
        assert!(fit.active.iter().all(|&a| a));
    }
}

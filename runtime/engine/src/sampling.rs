//! Choosing the next token from logits: greedy, or temperature with top-k and top-p, seeded.

pub use agentc_plan::decode::SamplingParams;

/// A token chooser with its own random stream; the same seed gives the same choices.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: SplitMix64,
    /// Reused between draws (one per vocabulary entry).
    candidates: Vec<Candidate>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = SplitMix64(params.seed);
        Self {
            params,
            rng,
            candidates: Vec::new(),
        }
    }

    /// The next token. Candidates rank by logit, then lower id; top-k keeps the first `top_k`,
    /// top-p the shortest ranked head holding `top_p` of the probability. Only what those need
    /// is sorted: with neither, the draw walks the vocabulary in id order (the same
    /// distribution; a full sort of 49k logits per token took ~1.8 ms).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.is_greedy() {
            return argmax(logits);
        }
        let temperature = self.params.temperature;
        let candidates = &mut self.candidates;
        candidates.clear();
        candidates.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(i, &l)| Candidate {
                    id: i as u32,
                    scaled: l / temperature,
                    weight: 0.0,
                }),
        );
        if candidates.is_empty() {
            return argmax(logits);
        }
        let top_k = self.params.top_k;
        if top_k > 0 && top_k < candidates.len() {
            candidates.select_nth_unstable_by(top_k - 1, Candidate::rank);
            candidates.truncate(top_k);
        }
        if top_k > 0 {
            candidates.sort_unstable_by(Candidate::rank);
        }
        let max = candidates
            .iter()
            .fold(f32::NEG_INFINITY, |m, c| m.max(c.scaled));
        let mut total = 0.0f64;
        for c in candidates.iter_mut() {
            c.weight = (c.scaled - max).exp();
            total += f64::from(c.weight);
        }
        if self.params.top_p < 1.0 {
            let keep = nucleus(candidates, total, f64::from(self.params.top_p), top_k > 0);
            candidates.truncate(keep);
            total = candidates.iter().map(|c| f64::from(c.weight)).sum();
        }
        let mut target = self.rng.next_unit() * total;
        for c in candidates.iter() {
            target -= f64::from(c.weight);
            if target <= 0.0 {
                return c.id;
            }
        }
        candidates[candidates.len() - 1].id
    }
}

/// A token in the running for a draw: its logit over the temperature and its unnormalized
/// probability.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    id: u32,
    scaled: f32,
    weight: f32,
}

impl Candidate {
    /// Higher logit first, then lower id.
    fn rank(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
        b.scaled.total_cmp(&a.scaled).then(a.id.cmp(&b.id))
    }
}

/// Ranked candidates sorted by the partial sort looking for the top-p head; if they do not
/// hold `top_p`, the rest are sorted whole (repeated partial sorts of a flat distribution,
/// whose nucleus is most of the vocabulary, cost more than one full sort).
const NUCLEUS_FIRST: usize = 64;

/// Sorts the head of `candidates` (already `sorted`, or not) in rank order until it holds
/// `top_p` of `total`, and returns its length: the smallest ranked prefix whose probability
/// reaches `top_p` (all of them if none does). The nucleus of a language model's next token is
/// usually a few tokens, so the first [`NUCLEUS_FIRST`] usually suffice.
fn nucleus(candidates: &mut [Candidate], total: f64, top_p: f64, sorted: bool) -> usize {
    let len = candidates.len();
    let mut head = if sorted { len } else { NUCLEUS_FIRST.min(len) };
    let mut cumulative = 0.0f64;
    let mut counted = 0;
    loop {
        if !sorted {
            // `..counted` already holds the best, ranked: pick the next best from the rest.
            if head < len {
                candidates[counted..].select_nth_unstable_by(head - 1 - counted, Candidate::rank);
            }
            candidates[counted..head].sort_unstable_by(Candidate::rank);
        }
        for (i, c) in candidates[counted..head].iter().enumerate() {
            cumulative += f64::from(c.weight) / total;
            if cumulative >= top_p {
                return counted + i + 1;
            }
        }
        if head == len {
            return len;
        }
        counted = head;
        head = len;
    }
}

/// Most alternatives a request may ask for per token (OpenAI's limit for `top_logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// One generated token's log-probability and the most likely tokens at its position, under
/// the distribution it was drawn from: the model's logits after `logit_bias` and the output
/// constraint's mask, before temperature, top-k and top-p (a token the constraint forced has
/// log-probability 0).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// Up to the requested number of (token, log-probability), most likely first (lower id
    /// first among equals).
    pub top: Vec<(u32, f32)>,
}

impl TokenLogprob {
    /// `token` under `logits`, with its `top` most likely alternatives.
    pub fn from_logits(logits: &[f32], token: u32, top: usize) -> Self {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_z = max + sum.ln() as f32;
        let logprob = |l: f32| (l - log_z).max(f32::MIN);
        // The best `top` by insertion into a short sorted list: `top` is at most 20.
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(top + 1);
        if top > 0 {
            for (id, &l) in logits.iter().enumerate() {
                if l == f32::NEG_INFINITY || (best.len() == top && l <= best[top - 1].1) {
                    continue;
                }
                let at = best.partition_point(|&(_, b)| b >= l);
                best.insert(at, (id as u32, l));
                best.truncate(top);
            }
        }
        Self {
            token,
            logprob: logits.get(token as usize).map_or(f32::MIN, |&l| logprob(l)),
            top: best.into_iter().map(|(id, l)| (id, logprob(l))).collect(),
        }
    }

    /// A token the output constraint forced: the only one allowed, so certain.
    pub fn forced(token: u32, top: usize) -> Self {
        Self {
            token,
            logprob: 0.0,
            top: if top > 0 {
                vec![(token, 0.0)]
            } else {
                Vec::new()
            },
        }
    }
}

/// The index of the largest logit, the lowest index among equals (as a stable sort gives).
pub fn argmax(logits: &[f32]) -> u32 {
    // The maximum over independent lanes (vectorizes; `f32::max` skips NaN), then its first
    // position: two passes over the vocabulary beat one branchy pass.
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut whole = logits.chunks_exact(LANES);
    for c in &mut whole {
        for l in 0..LANES {
            lanes[l] = lanes[l].max(c[l]);
        }
    }
    let max = whole
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    logits.iter().position(|&l| l == max).unwrap_or(0) as u32
}

/// SplitMix64: a small, well-mixed generator; plenty for sampling and fully reproducible.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        const MANTISSA_BITS: u32 = 53;
        (self.next_u64() >> (64 - MANTISSA_BITS)) as f64 / (1u64 << MANTISSA_BITS) as f64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_logprobs_are_log_softmax_with_the_best_alternatives_first() {
        let logits = [1.0f32, 3.0, f32::NEG_INFINITY, 3.0, 0.0];
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        let lp = TokenLogprob::from_logits(&logits, 0, 3);
        assert_eq!(lp.token, 0);
        assert!((lp.logprob - (1.0 - z.ln())).abs() < 1e-6, "{lp:?}");
        let ids: Vec<u32> = lp.top.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, [1, 3, 0]);
        assert!((lp.top[0].1 - (3.0 - z.ln())).abs() < 1e-6);
        assert_eq!(lp.top[0].1, lp.top[1].1);
        // A masked token is as unlikely as f32 can say, and never an alternative.
        let masked = TokenLogprob::from_logits(&logits, 2, 5);
        assert_eq!(masked.logprob, f32::MIN);
        assert_eq!(masked.top.len(), 4);
        assert!(TokenLogprob::from_logits(&logits, 1, 0).top.is_empty());
        assert_eq!(TokenLogprob::forced(7, 2).top, [(7, 0.0)]);
    }

    use super::*;

    #[test]
    fn argmax_takes_the_lowest_id_among_equal_maxima_at_any_length() {
        for len in [1, 15, 16, 17, 100, 49152] {
            let mut logits: Vec<f32> = (0..len).map(|i| ((i * 37) % 11) as f32 - 20.0).collect();
            assert_eq!(
                argmax(&logits),
                (0..len).find(|&i| (i * 37) % 11 == 10).unwrap_or(0) as u32
            );
            logits[len - 1] = 5.0;
            assert_eq!(argmax(&logits), len as u32 - 1, "len {len}");
            logits[len / 2] = 5.0;
            assert_eq!(argmax(&logits), (len / 2) as u32, "len {len}");
        }
        assert_eq!(argmax(&[f32::NEG_INFINITY; 20]), 0);
        assert_eq!(argmax(&[f32::NAN, 1.0, 3.0, 2.0]), 2);
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut sampler = Sampler::new(SamplingParams::greedy());
        assert_eq!(sampler.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn same_seed_same_choices_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 7) % 13) as f32 * 0.3).collect();
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.9,
            seed: 42,
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(params.clone());
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(params.clone());
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        assert_eq!(a, b);
        assert!(
            a.iter().any(|&t| t != a[0]),
            "sampling at temperature 1 varies"
        );
        let mut top1 = Sampler::new(SamplingParams { top_k: 1, ..params });
        assert_eq!(top1.sample(&logits), argmax(&logits));
    }

    fn counts(params: SamplingParams, logits: &[f32], draws: usize) -> Vec<usize> {
        let mut sampler = Sampler::new(params);
        let mut counts = vec![0; logits.len()];
        for _ in 0..draws {
            counts[sampler.sample(logits) as usize] += 1;
        }
        counts
    }

    #[test]
    fn draws_follow_the_softmax_of_the_logits_over_the_temperature() {
        // Probabilities 1/6, 2/6, 3/6 at temperature 1; 1/14, 4/14, 9/14 at temperature 0.5.
        let logits = [0.0, 2f32.ln(), 3f32.ln()];
        for (temperature, want) in [(1.0, [1.0, 2.0, 3.0]), (0.5, [1.0, 4.0, 9.0])] {
            let params = SamplingParams {
                temperature,
                top_k: 0,
                top_p: 1.0,
                seed: 7,
            };
            let got = counts(params, &logits, 60_000);
            let sum: f64 = want.iter().sum();
            for (g, w) in got.iter().zip(want) {
                let share = *g as f64 / 60_000.0;
                assert!((share - w / sum).abs() < 0.01, "{got:?} at {temperature}");
            }
        }
    }

    #[test]
    fn top_k_draws_only_among_the_k_best_ranked_by_logit_then_id() {
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let mut ranked: Vec<usize> = (0..1000).collect();
        ranked.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let params = SamplingParams {
            temperature: 5.0,
            top_k: 5,
            top_p: 1.0,
            seed: 3,
        };
        let got = counts(params, &logits, 2000);
        let drawn: Vec<usize> = (0..1000).filter(|&i| got[i] > 0).collect();
        let mut best: Vec<usize> = ranked[..5].to_vec();
        best.sort_unstable();
        assert_eq!(drawn, best);
    }

    #[test]
    fn top_p_over_a_flat_distribution_keeps_the_lowest_ids_past_the_first_partial_sort() {
        // 1000 equal logits: the nucleus for 0.5 is the 500 lowest ids (ties rank by id),
        // more than the first partial sort of 64 holds.
        let logits = vec![1.0f32; 1000];
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            seed: 11,
        };
        let got = counts(params, &logits, 20_000);
        assert!(got[500..].iter().all(|&c| c == 0), "drew past the nucleus");
        assert!(
            got[..500].iter().all(|&c| c > 0),
            "every nucleus token is drawn"
        );
    }

    /// The sampler before partial sorting: every candidate sorted by rank, then top-k, top-p
    /// and the draw in rank order. The oracle for the partial sorts.
    fn full_sort_draw(params: &SamplingParams, rng: &mut SplitMix64, logits: &[f32]) -> u32 {
        let mut c: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, l / params.temperature))
            .collect();
        c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if params.top_k > 0 {
            c.truncate(params.top_k);
        }
        let max = c[0].1;
        let mut total = 0.0f64;
        for x in c.iter_mut() {
            x.1 = (x.1 - max).exp();
            total += f64::from(x.1);
        }
        if params.top_p < 1.0 {
            let mut cumulative = 0.0f64;
            let mut keep = c.len();
            for (i, x) in c.iter().enumerate() {
                cumulative += f64::from(x.1) / total;
                if cumulative >= f64::from(params.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep);
            total = c.iter().map(|x| f64::from(x.1)).sum();
        }
        let mut target = rng.next_unit() * total;
        for &(id, w) in &c {
            target -= f64::from(w);
            if target <= 0.0 {
                return id;
            }
        }
        c[c.len() - 1].0
    }

    #[test]
    fn partial_sorts_draw_exactly_what_a_full_sort_draws_under_top_k_or_top_p() {
        let mut seed = 0x1234_5678u64;
        let logits: Vec<f32> = (0..5000)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32) * 12.0 - 6.0
            })
            .collect();
        for (top_k, top_p, temperature) in [
            (40, 1.0, 0.8),
            (0, 0.9, 0.7),
            (0, 0.99, 2.0),
            (100, 0.5, 1.0),
            (0, 0.3, 0.1),
        ] {
            let params = SamplingParams {
                temperature,
                top_k,
                top_p,
                seed: 99,
            };
            let mut sampler = Sampler::new(params.clone());
            let mut rng = SplitMix64(params.seed);
            for draw in 0..300 {
                let want = full_sort_draw(&params, &mut rng, &logits);
                assert_eq!(sampler.sample(&logits), want, "{params:?}, draw {draw}");
            }
        }
    }

    #[test]
    fn top_p_keeps_only_the_head_of_the_distribution() {
        let logits = [10.0, 9.0, -10.0, -10.0];
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            seed: 1,
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&logits), 0);
        }
    }
}

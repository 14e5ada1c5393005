//! Sampling decisions: which traces are recorded, and which handler runs
//! the metrics facet times.
//!
//! A ratio decides on 63 random bits against `ratio * 2^63`, as
//! OpenTelemetry's ratio sampler does on a trace id's low bits: a root
//! span's decision drawn here and the SDK's decision on the same trace id
//! agree, on every node.

use crate::seams::LocalRng;

/// How often something is sampled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// Every time.
    Always,
    /// Never.
    Never,
    /// This share (0..=1), decided at random (for traces, by trace id).
    Ratio(f64),
}

impl Sampling {
    /// The share sampled, in 0..=1.
    pub fn ratio(self) -> f64 {
        match self {
            Sampling::Always => 1.0,
            Sampling::Never => 0.0,
            Sampling::Ratio(r) => r.clamp(0.0, 1.0),
        }
    }

    /// Reads `always`, `never` or a ratio such as `0.01`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "always" => Ok(Sampling::Always),
            "never" => Ok(Sampling::Never),
            ratio => match ratio.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(Sampling::Ratio(r)),
                _ => Err(format!(
                    "sampler {text:?} is not always, never or a ratio in 0..=1"
                )),
            },
        }
    }
}

/// The bound 63 random bits must fall under for `ratio` to admit them
/// (`None`: every draw is admitted).
fn bound_of(ratio: f64) -> Option<u64> {
    if ratio >= 1.0 {
        return None;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return Some(0);
    }
    Some((ratio * (1u64 << 63) as f64) as u64)
}

/// Whether `ratio` admits the random `bits` (a trace id's low 64 bits).
pub(crate) fn admits_bits(bits: u64, ratio: f64) -> bool {
    bound_of(ratio).is_none_or(|bound| bits >> 1 < bound)
}

/// One decision per event at a fixed [`Sampling`], from a generator its
/// owner holds (no lock, about a nanosecond a decision).
#[derive(Clone, Debug)]
pub struct Sampler {
    sampling: Sampling,
    bound: Option<u64>,
    rng: LocalRng,
}

impl Sampler {
    /// Decides as `sampling` says, drawing from `rng`.
    pub fn new(sampling: Sampling, rng: LocalRng) -> Self {
        Sampler {
            sampling,
            bound: bound_of(sampling.ratio()),
            rng,
        }
    }

    /// How this sampler decides.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Whether this event is sampled.
    pub fn admit(&mut self) -> bool {
        match self.bound {
            None => true,
            Some(0) => false,
            Some(bound) => self.rng.next_u64() >> 1 < bound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampler_admits_its_share_and_the_extremes_exactly() {
        let admitted = |sampling| {
            let mut sampler = Sampler::new(sampling, LocalRng::new(11));
            (0..100_000).filter(|_| sampler.admit()).count()
        };
        assert_eq!(admitted(Sampling::Always), 100_000);
        assert_eq!(admitted(Sampling::Never), 0);
        assert_eq!(admitted(Sampling::Ratio(1.0)), 100_000);
        assert_eq!(admitted(Sampling::Ratio(0.0)), 0);
        let tenth = admitted(Sampling::Ratio(0.1));
        assert!((9_500..10_500).contains(&tenth), "{tenth} of 100000 at 0.1");
        let half = admitted(Sampling::Ratio(0.5));
        assert!((49_000..51_000).contains(&half), "{half} of 100000 at 0.5");
    }

    #[test]
    fn a_trace_id_ratio_admits_its_share_by_the_low_bits() {
        assert!(admits_bits(u64::MAX, 1.0) && !admits_bits(0, 0.0));
        assert!(admits_bits(0, 0.01) && !admits_bits(u64::MAX, 0.99));
        let mut rng = LocalRng::new(5);
        let admitted = (0..100_000)
            .filter(|_| admits_bits(rng.next_u64(), 0.3))
            .count();
        assert!((29_000..31_000).contains(&admitted), "{admitted} at 0.3");
    }

    #[test]
    fn samplings_parse_from_configuration() {
        assert_eq!(Sampling::parse(" always "), Ok(Sampling::Always));
        assert_eq!(Sampling::parse("never"), Ok(Sampling::Never));
        assert_eq!(Sampling::parse("0.25"), Ok(Sampling::Ratio(0.25)));
        for bad in ["2", "-0.1", "sometimes", "NaN", ""] {
            assert!(Sampling::parse(bad).is_err(), "{bad}");
        }
    }
}

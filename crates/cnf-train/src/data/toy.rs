//! FFJORD's eight 2-D toy distributions (`lib/toy_data.py`), drawn from a
//! caller-supplied random number generator. The sklearn generators that
//! FFJORD calls (`make_circles`, `make_moons`, `make_swiss_roll`) are
//! re-implemented with the same formulas.

use std::f64::consts::{FRAC_1_SQRT_2, PI};
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::data::table::Table;

/// One of FFJORD's toy sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToySet {
    /// `8gaussians`: eight isotropic Gaussians (std 0.5 / 1.414) centred on a circle of radius
    /// 4 / 1.414.
    EightGaussians,
    /// `2spirals`: two interleaved spiral arms, one the other's mirror image through the origin.
    TwoSpirals,
    /// `checkerboard`: uniform on 8 of the 16 squares of a 4 x 4 board covering `[-4, 4]^2`.
    Checkerboard,
    /// `circles`: two noisy concentric circles of radii 3 and 1.5.
    Circles,
    /// `moons`: two interleaved noisy half circles.
    Moons,
    /// `pinwheel`: five curved arms around the origin.
    Pinwheel,
    /// `rings`: four noisy concentric circles of radii 3, 2.25, 1.5 and 0.75.
    Rings,
    /// `swissroll`: the 2-D section (x, z) of a noisy Swiss roll, scaled by 1/5.
    SwissRoll,
}

/// Unknown toy-set name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown toy data set {0:?} (expected one of: {names})", names = ToySet::NAMES.join(", "))]
pub struct UnknownToySet(pub String);

impl ToySet {
    /// Every toy set, in FFJORD's order.
    pub const ALL: [ToySet; 8] = [
        ToySet::EightGaussians,
        ToySet::TwoSpirals,
        ToySet::Checkerboard,
        ToySet::Circles,
        ToySet::Moons,
        ToySet::Pinwheel,
        ToySet::Rings,
        ToySet::SwissRoll,
    ];
    /// FFJORD's names, in the order of [`Self::ALL`].
    pub const NAMES: [&'static str; 8] = [
        "8gaussians",
        "2spirals",
        "checkerboard",
        "circles",
        "moons",
        "pinwheel",
        "rings",
        "swissroll",
    ];

    /// FFJORD's name of the set (`"8gaussians"`, ...), which [`FromStr`] parses back and
    /// [`Display`](fmt::Display) prints.
    pub fn name(&self) -> &'static str {
        let index = Self::ALL.iter().position(|s| s == self).unwrap_or_default();
        Self::NAMES[index]
    }

    /// Draws `n` points as an `n x 2` table.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Table {
        let points = match self {
            ToySet::EightGaussians => eight_gaussians(n, rng),
            ToySet::TwoSpirals => two_spirals(n, rng),
            ToySet::Checkerboard => checkerboard(n, rng),
            ToySet::Circles => circles(n, rng),
            ToySet::Moons => moons(n, rng),
            ToySet::Pinwheel => pinwheel(n, rng),
            ToySet::Rings => rings(n, rng),
            ToySet::SwissRoll => swiss_roll(n, rng),
        };
        Table::from_generated_points(points)
    }
}

impl FromStr for ToySet {
    type Err = UnknownToySet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::NAMES
            .iter()
            .position(|name| *name == s)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| UnknownToySet(s.to_string()))
    }
}

impl fmt::Display for ToySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn normal(rng: &mut impl Rng) -> f64 {
    rng.sample(StandardNormal)
}

fn uniform(rng: &mut impl Rng) -> f64 {
    rng.random::<f64>()
}

/// numpy's `linspace(start, stop, n, endpoint)`.
fn linspace(start: f64, stop: f64, n: usize, endpoint: bool) -> Vec<f64> {
    let intervals = if endpoint { n.saturating_sub(1) } else { n };
    let step = if intervals == 0 {
        0.0
    } else {
        (stop - start) / intervals as f64
    };
    (0..n).map(|i| start + step * i as f64).collect()
}

fn add_noise(points: &mut [[f64; 2]], scale: f64, rng: &mut impl Rng) {
    for p in points.iter_mut() {
        p[0] += scale * normal(rng);
        p[1] += scale * normal(rng);
    }
}

/// `x = (randn(2) * 0.5 + 4 c_k) / 1.414`, `k` uniform over 8 unit directions.
fn eight_gaussians(n: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    const D: f64 = FRAC_1_SQRT_2;
    const CENTERS: [[f64; 2]; 8] = [
        [1.0, 0.0],
        [-1.0, 0.0],
        [0.0, 1.0],
        [0.0, -1.0],
        [D, D],
        [D, -D],
        [-D, D],
        [-D, -D],
    ];
    (0..n)
        .map(|_| {
            let noise = [normal(rng) * 0.5, normal(rng) * 0.5];
            let c = CENTERS[rng.random_range(0..8)];
            [
                (noise[0] + 4.0 * c[0]) / 1.414,
                (noise[1] + 4.0 * c[1]) / 1.414,
            ]
        })
        .collect()
}

/// Two mirrored spirals: the second half is the first negated (as in FFJORD),
/// then independent noise of scale 0.1. For odd `n` the mirror is cut short.
fn two_spirals(n: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    let half = n.div_ceil(2);
    let spiral: Vec<[f64; 2]> = (0..half)
        .map(|_| {
            let t = uniform(rng).sqrt() * 540.0 * (2.0 * PI) / 360.0;
            [-t.cos() * t, t.sin() * t]
        })
        .collect();
    let jitter_x: Vec<f64> = (0..half).map(|_| uniform(rng) * 0.5).collect();
    let jitter_y: Vec<f64> = (0..half).map(|_| uniform(rng) * 0.5).collect();
    let arm: Vec<[f64; 2]> = (0..half)
        .map(|i| [spiral[i][0] + jitter_x[i], spiral[i][1] + jitter_y[i]])
        .collect();
    let mut points: Vec<[f64; 2]> = arm
        .iter()
        .map(|p| [p[0] / 3.0, p[1] / 3.0])
        .chain(arm.iter().map(|p| [-p[0] / 3.0, -p[1] / 3.0]))
        .take(n)
        .collect();
    add_noise(&mut points, 0.1, rng);
    points
}

fn checkerboard(n: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    (0..n)
        .map(|_| {
            let x1 = uniform(rng) * 4.0 - 2.0;
            let x2_base = uniform(rng) - 2.0 * rng.random_range(0..2) as f64;
            // Python's `%` on floats is non-negative for a positive divisor.
            let x2 = x2_base + x1.floor().rem_euclid(2.0);
            [2.0 * x1, 2.0 * x2]
        })
        .collect()
}

/// sklearn `make_circles(n, factor=0.5, noise=0.08)` scaled by 3.
fn circles(n: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    let n_outer = n / 2;
    let outer = linspace(0.0, 2.0 * PI, n_outer, false);
    let inner = linspace(0.0, 2.0 * PI, n - n_outer, false);
    let mut points: Vec<[f64; 2]> = outer
        .iter()
        .map(|t| [t.cos(), t.sin()])
        .chain(inner.iter().map(|t| [0.5 * t.cos(), 0.5 * t.sin()]))
        .collect();
    points.shuffle(rng);
    add_noise(&mut points, 0.08, rng);
    points.iter().map(|p| [3.0 * p[0], 3.0 * p[1]]).collect()
}

/// sklearn `make_moons(n, noise=0.1)`, then `2x + (-1, -0.2)`.
fn moons(n: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    let n_outer = n / 2;
    let outer = linspace(0.0, PI, n_outer, true);
    let inner = linspace(0.0, PI, n - n_outer, true);
    let mut points: Vec<[f64; 2]> = outer
        .iter()
        .map(|t| [t.cos(), t.sin()])
        .chain(inner.iter().map(|t| [1.0 - t.cos(), 1.0 - t.sin() - 0.5]))
        .collect();
    points.shuffle(rng);
    add_noise(&mut points, 0.1, rng);
    points
        .iter()
        .map(|p| [2.0 * p[0] - 1.0, 2.0 * p[1] - 0.2])
        .collect()
}

/// Five arms. FFJORD draws `n // 5` per arm; here point `i` is in arm `i % 5`
/// so that exactly `n` points come back (identical when 5 divides `n`).
fn pinwheel(n: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    const N_ARMS: usize = 5;
    const RADIAL_STD: f64 = 0.3;
    const TANGENTIAL_STD: f64 = 0.1;
    const RATE: f64 = 0.25;
    let arm_angles = linspace(0.0, 2.0 * PI, N_ARMS, false);
    let features: Vec<[f64; 2]> = (0..n)
        .map(|_| [normal(rng) * RADIAL_STD + 1.0, normal(rng) * TANGENTIAL_STD])
        .collect();
    let mut points: Vec<[f64; 2]> = features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let angle = arm_angles[i % N_ARMS] + RATE * f[0].exp();
            let (sin, cos) = angle.sin_cos();
            // `features @ [[cos, -sin], [sin, cos]]`, as FFJORD's einsum.
            [
                2.0 * (f[0] * cos + f[1] * sin),
                2.0 * (-f[0] * sin + f[1] * cos),
            ]
        })
        .collect();
    points.shuffle(rng);
    points
}

/// Four concentric circles of radii 3, 2.25, 1.5 and 0.75, noise 0.08.
fn rings(n: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    let per_ring = n / 4;
    let counts = [per_ring, per_ring, per_ring, n - 3 * per_ring];
    let radii = [1.0, 0.75, 0.5, 0.25];
    let mut points: Vec<[f64; 2]> = counts
        .iter()
        .zip(radii)
        .flat_map(|(&count, r)| {
            linspace(0.0, 2.0 * PI, count, false)
                .into_iter()
                .map(move |t| [3.0 * r * t.cos(), 3.0 * r * t.sin()])
        })
        .collect();
    points.shuffle(rng);
    add_noise(&mut points, 0.08, rng);
    points
}

/// sklearn `make_swiss_roll(n, noise=1.0)`, columns x and z, divided by 5.
fn swiss_roll(n: usize, rng: &mut impl Rng) -> Vec<[f64; 2]> {
    (0..n)
        .map(|_| {
            let t = 1.5 * PI * (1.0 + 2.0 * uniform(rng));
            let x = t * t.cos() + normal(rng);
            let z = t * t.sin() + normal(rng);
            [x / 5.0, z / 5.0]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn draw(set: ToySet, n: usize, seed: u64) -> Table {
        set.sample(n, &mut StdRng::seed_from_u64(seed))
    }

    #[test]
    fn names_parse_and_display_round_trip() {
        for set in ToySet::ALL {
            assert_eq!(set.to_string().parse::<ToySet>(), Ok(set));
        }
        assert_eq!("8gaussians".parse(), Ok(ToySet::EightGaussians));
        let err = "9gaussians".parse::<ToySet>().unwrap_err();
        assert!(err.to_string().contains("8gaussians, 2spirals"));
    }

    #[test]
    fn every_set_is_finite_shaped_and_seeded() {
        for set in ToySet::ALL {
            for n in [1, 7, 501] {
                let t = draw(set, n, 3);
                assert_eq!((t.n_rows(), t.n_cols()), (n, 2), "{set}");
                assert!(t.data().iter().all(|v| v.is_finite()), "{set}");
            }
            assert_eq!(draw(set, 300, 11), draw(set, 300, 11), "{set}");
            assert_ne!(draw(set, 300, 11), draw(set, 300, 12), "{set}");
        }
    }

    #[test]
    fn eight_gaussians_moments_match_the_mixture() {
        let n = 200_000;
        let t = draw(ToySet::EightGaussians, n, 5);
        // Var = (0.5^2 + 16 E[c^2]) / 1.414^2 with E[c_x^2] = E[c_y^2] = 1/2.
        let var = (0.25 + 16.0 * 0.5) / (1.414f64 * 1.414);
        for j in 0..2 {
            let col = t.column(j).unwrap();
            let mean = col.iter().sum::<f64>() / n as f64;
            let m2 = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let m4 = col.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64;
            let mean_se = (var / n as f64).sqrt();
            let var_se = ((m4 - m2 * m2) / n as f64).sqrt();
            assert!(mean.abs() < 5.0 * mean_se, "mean {mean}");
            assert!((m2 - var).abs() < 5.0 * var_se, "var {m2} vs {var}");
        }
    }

    #[test]
    fn checkerboard_points_lie_on_even_squares() {
        let t = draw(ToySet::Checkerboard, 5_000, 1);
        for r in t.rows() {
            let parity = ((r[0] / 2.0).floor() + (r[1] / 2.0).floor()).rem_euclid(2.0);
            assert_eq!(parity, 0.0, "{r:?}");
            assert!(r.iter().all(|v| (-4.0..4.0).contains(v)));
        }
    }

    #[test]
    fn rings_split_evenly_between_their_four_radii() {
        // Noise 0.08 per coordinate against a 0.75 spacing: a point reaches
        // the neighbouring ring's half of the gap only past 4.7 sigma.
        let radii = [3.0, 2.25, 1.5, 0.75];
        let t = draw(ToySet::Rings, 4_000, 2);
        let mut counts = [0usize; 4];
        for r in t.rows() {
            let radius = r[0].hypot(r[1]);
            let distance = |k: usize| (radius - radii[k]).abs();
            let nearest = (0..4).min_by(|&a, &b| distance(a).total_cmp(&distance(b)));
            counts[nearest.unwrap_or_default()] += 1;
            assert!(radii.iter().any(|c| (radius - c).abs() < 0.5), "{radius}");
        }
        assert!(counts.iter().all(|c| c.abs_diff(1000) <= 3), "{counts:?}");
    }

    #[test]
    fn circles_split_evenly_between_radii_three_and_one_and_a_half() {
        let n = 4_000;
        let t = draw(ToySet::Circles, n, 2);
        let (outer, inner): (Vec<f64>, Vec<f64>) = t
            .rows()
            .map(|r| r[0].hypot(r[1]))
            .partition(|&radius| radius > 2.25);
        // A point crosses 2.25 only past ~3 sigma of radial noise.
        assert!(outer.len().abs_diff(n / 2) < 20, "{}", outer.len());
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        // Noise 0.24 per coordinate biases the mean radius up by ~sigma^2/2r.
        assert!((mean(&outer) - 3.0).abs() < 0.03, "{}", mean(&outer));
        assert!((mean(&inner) - 1.5).abs() < 0.03, "{}", mean(&inner));
    }
}
